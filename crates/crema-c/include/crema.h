/*
 * crema.h: the C ABI of crema (Caffe rebuilt in Rust).
 *
 * Link with -lcrema_c (target/<profile>/libcrema_c.so, built by
 * `cargo build -p crema-c`).
 *
 * Conventions
 *  - Every object (net, solver, layer, blob) is a crema_handle: a 64-bit id
 *    in a registry, never a pointer. 0 is never a valid handle. A handle that
 *    was deleted, or made before crema_reset, is reported as
 *    CREMA_ERR_INVALID_HANDLE; so is a handle of the wrong kind.
 *  - Handles belong to the thread that made them (crema's nets are
 *    single-threaded); use one thread per set of objects.
 *  - Every function that can fail returns CREMA_OK (0) or a CREMA_ERR_* code;
 *    crema_last_error() then gives a message naming the function and the
 *    cause. Nothing a caller passes makes crema abort the host process.
 *  - Layer and blob handles taken from a net (or a solver's nets) live as
 *    long as that net or solver; asking twice gives the same handle.
 *  - Blob values are float32 in Caffe's row-major order: shape (N, C, H, W)
 *    with W fastest. A column-major host (MATLAB, Fortran) sees the same
 *    memory as a (W, H, C, N) array.
 *  - Strings returned through `const char **out` stay valid until the next
 *    crema call on the same thread that returns a string; copy them.
 *  - Indices are 0-based.
 */
#ifndef CREMA_H
#define CREMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t crema_handle;

/* Status codes. */
#define CREMA_OK 0
#define CREMA_ERR_INVALID_HANDLE 1   /* unknown, deleted, reset or wrong kind */
#define CREMA_ERR_INVALID_ARGUMENT 2 /* NULL, bad string, index, size mismatch */
#define CREMA_ERR_FILE 3             /* file missing, unreadable, unwritable */
#define CREMA_ERR_CAFFE 4            /* crema refused: bad prototxt, shapes ... */
#define CREMA_ERR_INTERNAL 5         /* a bug in crema, caught at the boundary */

/* Caffe's limit on blob axes. */
#define CREMA_MAX_AXES 32

/* ---- library ---------------------------------------------------------- */

/* crema's version string, e.g. "0.1.0" (static). */
const char *crema_version(void);
/* The message of this thread's last failed call ("" before any failure). */
const char *crema_last_error(void);

/* Caffe::set_mode. This build computes on the CPU: set_mode_gpu records the
 * request (crema_mode() == 1) and crema_gpu_available() stays 0. */
int crema_set_mode_cpu(void);
int crema_set_mode_gpu(void);
int crema_mode(void);
int crema_gpu_available(void);
/* Caffe::SetDevice: a negative id is CREMA_ERR_INVALID_ARGUMENT. */
int crema_set_device(int device_id);
/* Reseeds the generator behind fillers, dropout and shuffling. */
int crema_set_random_seed(uint64_t seed);

/* A key that changes at every crema_reset (matcaffe's init_key). */
int crema_init_key(double *out);
/* Deletes every object of this thread; solvers/nets (may be NULL) receive how
 * many solvers and standalone nets were cleared. */
int crema_reset(size_t *solvers, size_t *nets);

/* ---- nets ------------------------------------------------------------- */

/* Builds a net from a prototxt (legacy formats upgraded); phase is "train"
 * or "test". */
int crema_net_new(const char *model_file, const char *phase, crema_handle *out);
/* Deletes a net from crema_net_new with its layer and blob handles. A
 * solver's net is owned by its solver: deleting it does nothing. */
int crema_net_delete(crema_handle net);
int crema_net_name(crema_handle net, const char **out);

/* Forward over what the input blobs hold; loss (may be NULL) receives the
 * weighted loss. */
int crema_net_forward(crema_handle net, float *loss);
int crema_net_backward(crema_handle net);
/* Reshapes every layer after an input blob changed shape. */
int crema_net_reshape(crema_handle net);
/* Copies the weights of same-named layers from a .caffemodel. */
int crema_net_copy_from(crema_handle net, const char *weights_file);
/* Writes the weights as a binary .caffemodel. */
int crema_net_save(crema_handle net, const char *weights_file);

int crema_net_layer_count(crema_handle net, size_t *out);
int crema_net_layer(crema_handle net, size_t index, crema_handle *out);
int crema_net_layer_name(crema_handle net, size_t index, const char **out);
int crema_net_blob_count(crema_handle net, size_t *out);
int crema_net_blob(crema_handle net, size_t index, crema_handle *out);
int crema_net_blob_name(crema_handle net, size_t index, const char **out);
/* An unknown name is CREMA_ERR_INVALID_ARGUMENT; the message lists the
 * net's blobs. */
int crema_net_blob_by_name(crema_handle net, const char *name, crema_handle *out);
/* Input and output blobs, as indices into the net's blobs. */
int crema_net_input_count(crema_handle net, size_t *out);
int crema_net_input_index(crema_handle net, size_t i, size_t *out);
int crema_net_output_count(crema_handle net, size_t *out);
int crema_net_output_index(crema_handle net, size_t i, size_t *out);

/* ---- layers ----------------------------------------------------------- */

int crema_layer_type(crema_handle layer, const char **out);
int crema_layer_name(crema_handle layer, const char **out);
/* Parameter blobs: 0 weights, 1 bias (for most layers). */
int crema_layer_blob_count(crema_handle layer, size_t *out);
int crema_layer_blob(crema_handle layer, size_t index, crema_handle *out);

/* ---- blobs ------------------------------------------------------------ */

/* A standalone, zero-filled blob of shape dims[0..num_axes). */
int crema_blob_new(const size_t *dims, size_t num_axes, crema_handle *out);
/* Deletes a standalone blob; a net's blob is CREMA_ERR_INVALID_ARGUMENT. */
int crema_blob_delete(crema_handle blob);
/* Reads a BlobProto file (a mean .binaryproto) into a standalone blob. */
int crema_blob_read_proto(const char *path, crema_handle *out);
/* Writes the blob's shape and data as a BlobProto file. */
int crema_blob_write_proto(crema_handle blob, const char *path);

int crema_blob_num_axes(crema_handle blob, size_t *out);
int crema_blob_count(crema_handle blob, size_t *out);
/* Writes the shape (N first) into dims, which has room for `capacity`
 * values (CREMA_MAX_AXES always suffices); num_axes receives the count. */
int crema_blob_shape(crema_handle blob, size_t *dims, size_t capacity, size_t *num_axes);
/* Reshapes (N first). After reshaping a net's input, call crema_net_reshape. */
int crema_blob_reshape(crema_handle blob, const size_t *dims, size_t num_axes);

/* Copies out / in; `count` must equal crema_blob_count, otherwise
 * CREMA_ERR_INVALID_ARGUMENT with both sizes in the message. */
int crema_blob_get_data(crema_handle blob, float *out, size_t count);
int crema_blob_get_diff(crema_handle blob, float *out, size_t count);
int crema_blob_set_data(crema_handle blob, const float *values, size_t count);
int crema_blob_set_diff(crema_handle blob, const float *values, size_t count);

/* ---- solvers ---------------------------------------------------------- */

/* Reads a solver prototxt (its `type` picks SGD, Nesterov, AdaGrad, RMSProp,
 * AdaDelta or Adam) and builds its nets. Relative paths inside it are taken
 * from the working directory, as Caffe does. */
int crema_solver_new(const char *solver_file, crema_handle *out);
/* Deletes a solver with its nets and every handle taken from them. */
int crema_solver_delete(crema_handle solver);
int crema_solver_iter(crema_handle solver, int *out);
int crema_solver_max_iter(crema_handle solver, int *out);
/* The train net and the test nets (owned by the solver). */
int crema_solver_net(crema_handle solver, crema_handle *out);
int crema_solver_test_net_count(crema_handle solver, size_t *out);
int crema_solver_test_net(crema_handle solver, size_t index, crema_handle *out);
/* Runs `iters` iterations (forward, backward, update, tests, snapshots). */
int crema_solver_step(crema_handle solver, int iters);
/* Trains to max_iter, first restoring resume_file (may be NULL). */
int crema_solver_solve(crema_handle solver, const char *resume_file);
/* Restores weights, history and iteration from a .solverstate. */
int crema_solver_restore(crema_handle solver, const char *state_file);
/* Writes <prefix>_iter_N.caffemodel and .solverstate now. */
int crema_solver_snapshot(crema_handle solver);

#ifdef __cplusplus
}
#endif

#endif /* CREMA_H */
