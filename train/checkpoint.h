/*
 * checkpoint.h - training checkpoints (prefix ckpt_): everything needed to
 * continue a run bit for bit.
 *
 * A checkpoint is a folder that is also a Hugging Face model:
 *   config.json, model.safetensors   the student (model_export_hf), F32
 *   optimizer.safetensors            AdamW moments: "m.<name>", "v.<name>"
 *                                    for every parameter tensor, F32
 *   extra.safetensors                more trained tensors (distillation's
 *                                    projection P and its moments), if any
 *   state.json                       the trainer's state (step, data RNG or
 *                                    loader position, resolved config),
 *                                    written last
 * It is written into DIR.tmp and renamed to DIR when complete, so a killed
 * save leaves no folder that looks complete. F32 round trips exactly, so a
 * resumed run continues with the very same numbers.
 */
#ifndef SRA_CHECKPOINT_H
#define SRA_CHECKPOINT_H

#include "model.h"

/* Saves m, the moments am, av (m->n_params each), extra tensors (n_extra,
 * may be 0: e.g. distillation's projection and its moments, written to
 * extra.safetensors) and state_json (a JSON object). Replaces an existing
 * DIR. Returns 0 or -1 with err. */
#include "safetensors.h"
int ckpt_save(const char *dir, const model *m, const float *am, const float *av, const st_out *extra, int n_extra,
              const char *state_json, char *err, size_t errlen);
/* Loads a checkpoint: *m (model_load_hf), *am, *av (malloc'd, n_params
 * each) and *state_json (malloc'd). Returns 0 or -1 with err. */
int ckpt_load(const char *dir, model *m, float **am, float **av, char **state_json, char *err, size_t errlen);

#endif /* SRA_CHECKPOINT_H */
