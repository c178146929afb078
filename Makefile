# sra - cross-tokenizer distillation. `make help` lists the targets.
#
# Flags: CC and CFLAGS are yours to override; the warning set and the
# language level are always on. Libraries come from pkg-config (Debian's
# serial HDF5 is `hdf5-serial`); `make deps` installs what is missing.

CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
BUILD   ?= build
PY      ?= /usr/bin/python3

SRA_CFLAGS := -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread
PKGS       := libzstd openblas libutf8proc libcjson oniguruma
HDF5_PKG   := $(shell pkg-config --exists hdf5-serial 2>/dev/null && echo hdf5-serial || echo hdf5)
PKG_CFLAGS := $(shell pkg-config --cflags $(HDF5_PKG) $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(HDF5_PKG) $(PKGS) 2>/dev/null)
# Where HDF5 looks for plugins by default: Debian's .pc file says it
# (PluginDir); elsewhere HDF5's own default is /usr/local/hdf5/lib/plugin.
HDF5_PLUGINDIR := $(shell pkg-config --variable=PluginDir $(HDF5_PKG) 2>/dev/null)
PLUGINDIR  ?= $(if $(HDF5_PLUGINDIR),$(HDF5_PLUGINDIR),/usr/local/hdf5/lib/plugin)

ALL_CFLAGS := $(SRA_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Iformat -Itrain -Iextract
LDLIBS     := $(PKG_LIBS) -lm -pthread

FORMAT_SRC := $(wildcard format/*.c)
LIB_SRC    := $(filter-out format/zstd_plugin.c,$(FORMAT_SRC)) $(wildcard train/*.c) $(wildcard extract/*.c)
HEADERS    := $(wildcard format/*.h train/*.h extract/*.h)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libsra.a
PROGS      := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/sra-*.c))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BINS  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(BUILD)/tests/cache_fixture
BENCH_BINS := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/bench-*.c))
PLUGIN     := $(BUILD)/plugins/libh5zstd.so

.PHONY: all deps check-deps test asan bench demo install clean help fuzz fuzz-build
.DEFAULT_GOAL := all

all: check-deps $(LIB) $(PROGS) $(PLUGIN) $(TEST_BINS) $(BENCH_BINS)

# Data-parallel training over OpenMPI (`make MPI=1`; Debian openmpi-bin +
# libopenmpi-dev): adds $(BUILD)/sra-train-mpi, the same sra-train with
# train/dist.c compiled against MPI (its object goes before libsra.a, so
# the library's one-process dist.o is not linked). Everything else, and
# the default build, stays MPI-free. Run: mpirun -np N build/sra-train-mpi
MPICC   ?= mpicc
MPI_BIN := $(BUILD)/sra-train-mpi
ifeq ($(MPI),1)
all: $(MPI_BIN)
endif

$(BUILD)/obj-mpi/dist.o: train/dist.c train/dist.h format/util.h
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -DSRA_MPI -c $< -o $@

$(MPI_BIN): tools/sra-train.c $(BUILD)/obj-mpi/dist.o $(LIB)
	$(MPICC) $(ALL_CFLAGS) $< $(BUILD)/obj-mpi/dist.o $(LIB) $(LDLIBS) -o $@

help:
	@echo "make            build libsra.a, the programs and the HDF5 zstd plugin into $(BUILD)/"
	@echo "make deps       install the Debian packages sra needs (root), or print the apt-get line"
	@echo "make demo       the main job on an embedded default (installs packages first)"
	@echo "make test       the whole test suite (installs packages first); ends 'N passed, N failed'"
	@echo "make MPI=1      also build/sra-train-mpi, data-parallel training over OpenMPI (mpirun)"
	@echo "make asan       the test suite under -fsanitize=address,undefined (in build-asan/)"
	@echo "make bench      benchmarks; ratios against peers measured in the same run"
	@echo "make fuzz       libFuzzer targets for tokenizer.json loading and encoding (FUZZ_SECONDS each)"
	@echo "make install    programs to PREFIX/bin ($(PREFIX)), plugin to PLUGINDIR ($(PLUGINDIR))"
	@echo "make clean      remove build outputs"

deps:
	@tests/deps.sh install

check-deps:
	@tests/deps.sh check-build

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/sra-%: tools/sra-%.c $(LIB)
	$(CC) $(ALL_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench-%: tools/bench-%.c $(LIB)
	$(CC) $(ALL_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/check.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $< $(LIB) $(LDLIBS) -o $@

# The plugin is built without sanitizers even under `make asan`: it is
# loaded into /usr/bin/python3 and h5dump, which carry no ASan runtime.
$(PLUGIN): format/zstd_filter.c format/zstd_plugin.c format/zstd_filter.h
	@mkdir -p $(dir $@)
	$(CC) $(SRA_CFLAGS) -O2 -g $(PKG_CFLAGS) -DSRA_ZSTD_PLUGIN -fPIC -shared \
	  format/zstd_filter.c format/zstd_plugin.c -lzstd -o $@

# These install packages first, then build in a sub-make so that the
# pkg-config flags are computed after the install.
define deps_then_build
	@tests/deps.sh install
	@$(MAKE) --no-print-directory all
endef

# The suite and the benchmarks also build sra-train-mpi (tests/cli_mpi.sh)
# when mpicc is there.
test:
	@tests/deps.sh install
	@$(MAKE) --no-print-directory all $$(command -v $(MPICC) >/dev/null && echo MPI=1)
	@tests/run.sh $(BUILD)

asan:
	@tests/deps.sh install
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh build-asan

bench:
	@tests/deps.sh install
	@$(MAKE) --no-print-directory all $$(command -v $(MPICC) >/dev/null && echo MPI=1)
	@tests/bench.sh $(BUILD)

demo:
	$(deps_then_build)
	@tests/demo.sh $(BUILD)

# libFuzzer targets (Debian clang + libclang-rt-14-dev): the library is
# rebuilt with clang and -fsanitize=fuzzer,address,undefined into
# build-fuzz/, each target runs FUZZ_SECONDS (default 600) on its seeds.
FUZZ_SECONDS ?= 600
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz-build:
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(SRA_CFLAGS) $(FUZZ_FLAGS) $(PKG_CFLAGS) -Iformat tests/fuzz/fuzz_tok_load.c \
	  $(filter format/tok% format/unicode.c format/util.c,$(LIB_SRC)) $(LDLIBS) -o build-fuzz/fuzz_tok_load
	$(FUZZ_CC) $(SRA_CFLAGS) $(FUZZ_FLAGS) $(PKG_CFLAGS) -Iformat tests/fuzz/fuzz_tok_encode.c \
	  $(filter format/tok% format/unicode.c format/util.c,$(LIB_SRC)) $(LDLIBS) -o build-fuzz/fuzz_tok_encode

fuzz: fuzz-build
	@mkdir -p build-fuzz/corpus_load build-fuzz/corpus_encode
	build-fuzz/fuzz_tok_load -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=build-fuzz/ -max_len=65536 -rss_limit_mb=4096 \
	  build-fuzz/corpus_load tests/fuzz/seed_load
	SRA_SHARED=$${SRA_SHARED:-../shared} build-fuzz/fuzz_tok_encode -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=build-fuzz/ \
	  -max_len=4096 -rss_limit_mb=8192 build-fuzz/corpus_encode tests/fuzz/seed_encode

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PLUGINDIR)
	install -m 755 $(PROGS) tools/sra-plot $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(PLUGIN) $(DESTDIR)$(PLUGINDIR)/

clean:
	rm -rf build build-asan build-fuzz
