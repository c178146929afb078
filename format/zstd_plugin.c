/*
 * zstd_plugin.c - the two entry points that make zstd_filter.c an HDF5
 * dynamically loaded filter plugin (build/plugins/libh5zstd.so).
 *
 * HDF5 dlopen()s every library in HDF5_PLUGIN_PATH when it meets an unknown
 * filter id, asks H5PLget_plugin_type() whether it is a filter and takes the
 * H5Z_class2_t from H5PLget_plugin_info(). The codec itself needs only zstd,
 * so the plugin does not link libhdf5 and works with the host's copy.
 */
#include <H5PLextern.h>

const void *sra_zstd_filter_class(void);

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) { return sra_zstd_filter_class(); }
