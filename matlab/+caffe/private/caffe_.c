/*
 * caffe_: matcaffe's MEX gateway, on crema's C ABI (crates/crema-c/include/crema.h).
 *
 *   caffe_(command, arg1, arg2, ...)
 *
 * Objects cross as matcaffe's handles: 1x1 structs {ptr: uint64, init_key:
 * double}. `ptr` is a crema handle (a registry id, never a memory address),
 * so a handle of a deleted object is reported by crema instead of being
 * dereferenced, and `init_key` tells handles from before a reset apart.
 *
 * Arrays cross in matcaffe's layout: single precision, dimensions reversed
 * from Caffe's (a blob of shape N x C x H x W is a W x H x C x N array).
 * Column-major with reversed dimensions is exactly Caffe's row-major memory,
 * so values are copied as they are.
 *
 * Build (Octave): mkoctfile --mex caffe_.c -I<crema>/crates/crema-c/include \
 *   -L<crema>/target/debug -lcrema_c -Wl,-rpath,<crema>/target/debug
 * MATLAB builds the same file with `mex`.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mex.h"
#include "crema.h"

#define MEX_ARGS int nlhs, mxArray **plhs, int nrhs, const mxArray **prhs

/* Raises an Octave/MATLAB error; never returns. */
static void fail(const char *msg) { mexErrMsgIdAndTxt("caffe:crema", "%s", msg); }

static void usage_check(int ok, const char *usage) {
  if (!ok) {
    mexErrMsgIdAndTxt("caffe:usage", "Usage: %s", usage);
  }
}

/* Turns a crema status into an error carrying crema's message. */
static void check(int status) {
  if (status != CREMA_OK) {
    fail(crema_last_error());
  }
}

/* A string argument, copied into a buffer freed by the MEX runtime. */
static char *string_arg(const mxArray *a, const char *what) {
  char *s;
  if (!mxIsChar(a)) {
    mexErrMsgIdAndTxt("caffe:usage", "%s must be a string", what);
  }
  s = mxArrayToString(a);
  if (s == NULL) {
    mexErrMsgIdAndTxt("caffe:usage", "%s could not be read as a string", what);
  }
  return s;
}

static double current_init_key(void) {
  double key = 0;
  check(crema_init_key(&key));
  return key;
}

/* ---- handles ----------------------------------------------------------- */

static const char *handle_fields[] = {"ptr", "init_key"};

static mxArray *handle_vec(size_t n) {
  return mxCreateStructMatrix(n, 1, 2, handle_fields);
}

static void set_handle(mxArray *vec, size_t i, crema_handle h, double key) {
  mxArray *ptr = mxCreateNumericMatrix(1, 1, mxUINT64_CLASS, mxREAL);
  *(uint64_t *)mxGetData(ptr) = h;
  mxSetField(vec, i, "ptr", ptr);
  mxSetField(vec, i, "init_key", mxCreateDoubleScalar(key));
}

static mxArray *to_handle(crema_handle h) {
  mxArray *vec = handle_vec(1);
  set_handle(vec, 0, h, current_init_key());
  return vec;
}

/* The crema handle inside a matcaffe handle struct, checked for shape and
 * init_key; crema itself checks that the object still exists. */
static crema_handle from_handle(const mxArray *a) {
  const mxArray *ptr;
  const mxArray *key;
  if (!mxIsStruct(a) || mxGetNumberOfElements(a) != 1) {
    fail("a handle must be a 1x1 struct with fields ptr and init_key");
  }
  ptr = mxGetField(a, 0, "ptr");
  key = mxGetField(a, 0, "init_key");
  if (ptr == NULL || key == NULL || !mxIsUint64(ptr) || mxGetNumberOfElements(ptr) != 1 ||
      !mxIsDouble(key) || mxGetNumberOfElements(key) != 1) {
    fail("a handle must have a scalar uint64 ptr and a scalar double init_key");
  }
  if (mxGetScalar(key) != current_init_key()) {
    fail("Could not convert handle to pointer due to invalid init_key. "
         "The object might have been cleared (caffe.reset_all).");
  }
  return *(const uint64_t *)mxGetData(ptr);
}

/* ---- conversions -------------------------------------------------------- */

static mxArray *index_vec(crema_handle net, int (*count)(crema_handle, size_t *),
                          int (*at)(crema_handle, size_t, size_t *)) {
  size_t n = 0, i, v;
  mxArray *out;
  check(count(net, &n));
  out = mxCreateDoubleMatrix(n, 1, mxREAL);
  for (i = 0; i < n; i++) {
    check(at(net, i, &v));
    mxGetPr(out)[i] = (double)v;
  }
  return out;
}

static mxArray *name_cell(crema_handle net, size_t n,
                          int (*name)(crema_handle, size_t, const char **)) {
  size_t i;
  const char *s;
  mxArray *out = mxCreateCellMatrix(n, 1);
  for (i = 0; i < n; i++) {
    check(name(net, i, &s));
    mxSetCell(out, i, mxCreateString(s));
  }
  return out;
}

/* A blob's data or diff as a single array with reversed dimensions. */
static mxArray *blob_to_array(crema_handle blob, int diff) {
  size_t dims[CREMA_MAX_AXES], n = 0, i, count = 0;
  mwSize mdims[CREMA_MAX_AXES];
  mxArray *out;
  check(crema_blob_shape(blob, dims, CREMA_MAX_AXES, &n));
  check(crema_blob_count(blob, &count));
  for (i = 0; i < n; i++) {
    mdims[n - 1 - i] = (mwSize)dims[i];
  }
  if (n == 0) { /* a scalar blob becomes a 1x1 array */
    mdims[0] = 1;
    n = 1;
  }
  out = mxCreateNumericArray(n, mdims, mxSINGLE_CLASS, mxREAL);
  check(diff ? crema_blob_get_diff(blob, (float *)mxGetData(out), count)
             : crema_blob_get_data(blob, (float *)mxGetData(out), count));
  return out;
}

static void array_to_blob(const mxArray *a, crema_handle blob, int diff) {
  size_t count = 0;
  char msg[256];
  check(crema_blob_count(blob, &count));
  if (!mxIsSingle(a) || mxIsComplex(a)) {
    fail("blob data and diff must be real single arrays");
  }
  if (mxGetNumberOfElements(a) != count) {
    snprintf(msg, sizeof msg,
             "number of elements in target blob (%lu) doesn't match that in input array (%lu)",
             (unsigned long)count, (unsigned long)mxGetNumberOfElements(a));
    fail(msg);
  }
  check(diff ? crema_blob_set_diff(blob, (const float *)mxGetData(a), count)
             : crema_blob_set_data(blob, (const float *)mxGetData(a), count));
}

/* ---- solvers ------------------------------------------------------------ */

static void get_solver(MEX_ARGS) {
  crema_handle h;
  char *file;
  usage_check(nrhs == 1 && mxIsChar(prhs[0]), "caffe_('get_solver', solver_file)");
  file = string_arg(prhs[0], "solver_file");
  check(crema_solver_new(file, &h));
  mxFree(file);
  plhs[0] = to_handle(h);
}

static void delete_solver(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('delete_solver', hSolver)");
  check(crema_solver_delete(from_handle(prhs[0])));
}

static void solver_get_attr(MEX_ARGS) {
  static const char *fields[] = {"hNet_net", "hNet_test_nets"};
  crema_handle s, h;
  size_t n = 0, i;
  double key;
  mxArray *attr, *tests;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('solver_get_attr', hSolver)");
  s = from_handle(prhs[0]);
  key = current_init_key();
  attr = mxCreateStructMatrix(1, 1, 2, fields);
  check(crema_solver_net(s, &h));
  mxSetField(attr, 0, "hNet_net", to_handle(h));
  check(crema_solver_test_net_count(s, &n));
  tests = handle_vec(n);
  for (i = 0; i < n; i++) {
    check(crema_solver_test_net(s, i, &h));
    set_handle(tests, i, h, key);
  }
  mxSetField(attr, 0, "hNet_test_nets", tests);
  plhs[0] = attr;
}

static void solver_get_iter(MEX_ARGS) {
  int iter = 0;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('solver_get_iter', hSolver)");
  check(crema_solver_iter(from_handle(prhs[0]), &iter));
  plhs[0] = mxCreateDoubleScalar(iter);
}

static void solver_get_max_iter(MEX_ARGS) {
  int iter = 0;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('solver_get_max_iter', hSolver)");
  check(crema_solver_max_iter(from_handle(prhs[0]), &iter));
  plhs[0] = mxCreateDoubleScalar(iter);
}

static void solver_restore(MEX_ARGS) {
  crema_handle s;
  char *file;
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsChar(prhs[1]),
              "caffe_('solver_restore', hSolver, snapshot_file)");
  s = from_handle(prhs[0]);
  file = string_arg(prhs[1], "snapshot_file");
  check(crema_solver_restore(s, file));
  mxFree(file);
}

static void solver_solve(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('solver_solve', hSolver)");
  check(crema_solver_solve(from_handle(prhs[0]), NULL));
}

static void solver_step(MEX_ARGS) {
  double iters;
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsDouble(prhs[1]) &&
                  mxGetNumberOfElements(prhs[1]) == 1,
              "caffe_('solver_step', hSolver, iters)");
  iters = mxGetScalar(prhs[1]);
  if (iters < 0 || iters > 2147483647.0 || iters != (double)(int)iters) {
    fail("iters must be a non-negative integer");
  }
  check(crema_solver_step(from_handle(prhs[0]), (int)iters));
}

/* ---- nets --------------------------------------------------------------- */

static void get_net(MEX_ARGS) {
  crema_handle h;
  char *model, *phase;
  usage_check(nrhs == 2 && mxIsChar(prhs[0]) && mxIsChar(prhs[1]),
              "caffe_('get_net', model_file, phase_name)");
  model = string_arg(prhs[0], "model_file");
  phase = string_arg(prhs[1], "phase_name");
  check(crema_net_new(model, phase, &h));
  mxFree(model);
  mxFree(phase);
  plhs[0] = to_handle(h);
}

static void delete_net(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('delete_net', hNet)");
  check(crema_net_delete(from_handle(prhs[0])));
}

static void net_get_attr(MEX_ARGS) {
  static const char *fields[] = {"hLayer_layers",      "hBlob_blobs", "input_blob_indices",
                                 "output_blob_indices", "layer_names", "blob_names", "name"};
  crema_handle net, h;
  size_t nl = 0, nb = 0, i;
  double key;
  const char *name;
  mxArray *attr, *layers, *blobs;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('net_get_attr', hNet)");
  net = from_handle(prhs[0]);
  key = current_init_key();
  attr = mxCreateStructMatrix(1, 1, 7, fields);
  check(crema_net_layer_count(net, &nl));
  layers = handle_vec(nl);
  for (i = 0; i < nl; i++) {
    check(crema_net_layer(net, i, &h));
    set_handle(layers, i, h, key);
  }
  mxSetField(attr, 0, "hLayer_layers", layers);
  check(crema_net_blob_count(net, &nb));
  blobs = handle_vec(nb);
  for (i = 0; i < nb; i++) {
    check(crema_net_blob(net, i, &h));
    set_handle(blobs, i, h, key);
  }
  mxSetField(attr, 0, "hBlob_blobs", blobs);
  mxSetField(attr, 0, "input_blob_indices",
             index_vec(net, crema_net_input_count, crema_net_input_index));
  mxSetField(attr, 0, "output_blob_indices",
             index_vec(net, crema_net_output_count, crema_net_output_index));
  mxSetField(attr, 0, "layer_names", name_cell(net, nl, crema_net_layer_name));
  mxSetField(attr, 0, "blob_names", name_cell(net, nb, crema_net_blob_name));
  check(crema_net_name(net, &name));
  mxSetField(attr, 0, "name", mxCreateString(name));
  plhs[0] = attr;
}

static void net_forward(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('net_forward', hNet)");
  check(crema_net_forward(from_handle(prhs[0]), NULL));
}

static void net_backward(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('net_backward', hNet)");
  check(crema_net_backward(from_handle(prhs[0])));
}

static void net_copy_from(MEX_ARGS) {
  crema_handle net;
  char *file;
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsChar(prhs[1]),
              "caffe_('net_copy_from', hNet, weights_file)");
  net = from_handle(prhs[0]);
  file = string_arg(prhs[1], "weights_file");
  check(crema_net_copy_from(net, file));
  mxFree(file);
}

static void net_reshape(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('net_reshape', hNet)");
  check(crema_net_reshape(from_handle(prhs[0])));
}

static void net_save(MEX_ARGS) {
  crema_handle net;
  char *file;
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsChar(prhs[1]),
              "caffe_('net_save', hNet, save_file)");
  net = from_handle(prhs[0]);
  file = string_arg(prhs[1], "save_file");
  check(crema_net_save(net, file));
  mxFree(file);
}

/* ---- layers ------------------------------------------------------------- */

static void layer_get_attr(MEX_ARGS) {
  static const char *fields[] = {"hBlob_blobs"};
  crema_handle layer, h;
  size_t n = 0, i;
  double key;
  mxArray *attr, *blobs;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('layer_get_attr', hLayer)");
  layer = from_handle(prhs[0]);
  key = current_init_key();
  check(crema_layer_blob_count(layer, &n));
  blobs = handle_vec(n);
  for (i = 0; i < n; i++) {
    check(crema_layer_blob(layer, i, &h));
    set_handle(blobs, i, h, key);
  }
  attr = mxCreateStructMatrix(1, 1, 1, fields);
  mxSetField(attr, 0, "hBlob_blobs", blobs);
  plhs[0] = attr;
}

static void layer_get_type(MEX_ARGS) {
  const char *type;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('layer_get_type', hLayer)");
  check(crema_layer_type(from_handle(prhs[0]), &type));
  plhs[0] = mxCreateString(type);
}

/* ---- blobs -------------------------------------------------------------- */

static void blob_get_shape(MEX_ARGS) {
  size_t dims[CREMA_MAX_AXES], n = 0, i;
  mxArray *out;
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('blob_get_shape', hBlob)");
  check(crema_blob_shape(from_handle(prhs[0]), dims, CREMA_MAX_AXES, &n));
  out = mxCreateDoubleMatrix(1, n, mxREAL);
  for (i = 0; i < n; i++) {
    mxGetPr(out)[n - 1 - i] = (double)dims[i];
  }
  plhs[0] = out;
}

static void blob_reshape(MEX_ARGS) {
  size_t dims[CREMA_MAX_AXES], n, i;
  const double *shape;
  crema_handle blob;
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsDouble(prhs[1]),
              "caffe_('blob_reshape', hBlob, new_shape)");
  blob = from_handle(prhs[0]);
  n = mxGetNumberOfElements(prhs[1]);
  if (n > CREMA_MAX_AXES) {
    fail("new_shape has more axes than Caffe's limit of 32");
  }
  shape = mxGetPr(prhs[1]);
  for (i = 0; i < n; i++) {
    double d = shape[n - 1 - i];
    if (!(d >= 0) || d != (double)(size_t)d) {
      fail("new_shape must hold non-negative integers");
    }
    dims[i] = (size_t)d;
  }
  check(crema_blob_reshape(blob, dims, n));
}

static void blob_get_data(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('blob_get_data', hBlob)");
  plhs[0] = blob_to_array(from_handle(prhs[0]), 0);
}

static void blob_set_data(MEX_ARGS) {
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsSingle(prhs[1]),
              "caffe_('blob_set_data', hBlob, new_data)");
  array_to_blob(prhs[1], from_handle(prhs[0]), 0);
}

static void blob_get_diff(MEX_ARGS) {
  usage_check(nrhs == 1 && mxIsStruct(prhs[0]), "caffe_('blob_get_diff', hBlob)");
  plhs[0] = blob_to_array(from_handle(prhs[0]), 1);
}

static void blob_set_diff(MEX_ARGS) {
  usage_check(nrhs == 2 && mxIsStruct(prhs[0]) && mxIsSingle(prhs[1]),
              "caffe_('blob_set_diff', hBlob, new_diff)");
  array_to_blob(prhs[1], from_handle(prhs[0]), 1);
}

/* ---- Caffe-wide --------------------------------------------------------- */

static void set_mode_cpu(MEX_ARGS) {
  usage_check(nrhs == 0, "caffe_('set_mode_cpu')");
  check(crema_set_mode_cpu());
}

static void set_mode_gpu(MEX_ARGS) {
  usage_check(nrhs == 0, "caffe_('set_mode_gpu')");
  check(crema_set_mode_gpu());
  if (!crema_gpu_available()) {
    mexWarnMsgIdAndTxt("caffe:nogpu", "set_mode_gpu: this crema build has no GPU backend; "
                                      "running on the CPU");
  }
}

static void set_device(MEX_ARGS) {
  double id;
  usage_check(nrhs == 1 && mxIsDouble(prhs[0]) && mxGetNumberOfElements(prhs[0]) == 1,
              "caffe_('set_device', device_id)");
  id = mxGetScalar(prhs[0]);
  if (id != (double)(int)id) {
    fail("device_id must be an integer");
  }
  check(crema_set_device((int)id));
  if (!crema_gpu_available()) {
    mexWarnMsgIdAndTxt("caffe:nogpu", "set_device: this crema build has no GPU backend; "
                                      "running on the CPU");
  }
}

static void get_init_key(MEX_ARGS) {
  usage_check(nrhs == 0, "caffe_('get_init_key')");
  plhs[0] = mxCreateDoubleScalar(current_init_key());
}

static void reset(MEX_ARGS) {
  size_t solvers = 0, nets = 0;
  usage_check(nrhs == 0, "caffe_('reset')");
  check(crema_reset(&solvers, &nets));
  mexPrintf("Cleared %lu solvers and %lu stand-alone nets\n", (unsigned long)solvers,
            (unsigned long)nets);
}

static void read_mean(MEX_ARGS) {
  crema_handle blob;
  char *file;
  char msg[1024];
  size_t dims[CREMA_MAX_AXES], n = 0, count = 0, i;
  mwSize mdims[CREMA_MAX_AXES];
  mxArray *out = NULL;
  int status;
  usage_check(nrhs == 1 && mxIsChar(prhs[0]), "caffe_('read_mean', mean_proto_file)");
  file = string_arg(prhs[0], "mean_proto_file");
  check(crema_blob_read_proto(file, &blob));
  mxFree(file);
  /* The blob is freed before any error is raised, so none is left behind. */
  status = crema_blob_shape(blob, dims, CREMA_MAX_AXES, &n);
  if (status == CREMA_OK) {
    status = crema_blob_count(blob, &count);
  }
  if (status == CREMA_OK) {
    for (i = 0; i < n; i++) {
      mdims[n - 1 - i] = (mwSize)dims[i];
    }
    if (n == 0) {
      mdims[0] = 1;
      n = 1;
    }
    out = mxCreateNumericArray(n, mdims, mxSINGLE_CLASS, mxREAL);
    status = crema_blob_get_data(blob, (float *)mxGetData(out), count);
  }
  if (status != CREMA_OK) {
    snprintf(msg, sizeof msg, "%s", crema_last_error());
    crema_blob_delete(blob);
    fail(msg);
  }
  crema_blob_delete(blob);
  plhs[0] = out;
}

static void write_mean(MEX_ARGS) {
  const mwSize *mdims;
  size_t dims[4];
  mwSize nd;
  crema_handle blob;
  char *file;
  int status;
  usage_check(nrhs == 2 && mxIsSingle(prhs[0]) && mxIsChar(prhs[1]),
              "caffe_('write_mean', mean_data, mean_proto_file)");
  nd = mxGetNumberOfDimensions(prhs[0]);
  if (nd < 2 || nd > 3) {
    fail("mean_data must have 2 or 3 dimensions (W x H x C)");
  }
  mdims = mxGetDimensions(prhs[0]);
  dims[0] = 1;                         /* num */
  dims[1] = nd == 3 ? mdims[2] : 1;    /* channels */
  dims[2] = mdims[1];                  /* height */
  dims[3] = mdims[0];                  /* width */
  file = string_arg(prhs[1], "mean_proto_file");
  check(crema_blob_new(dims, 4, &blob));
  status = crema_blob_set_data(blob, (const float *)mxGetData(prhs[0]),
                               mxGetNumberOfElements(prhs[0]));
  if (status == CREMA_OK) {
    status = crema_blob_write_proto(blob, file);
  }
  mxFree(file);
  if (status != CREMA_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", crema_last_error());
    crema_blob_delete(blob);
    fail(msg);
  }
  crema_blob_delete(blob);
}

static void version(MEX_ARGS) {
  usage_check(nrhs == 0, "caffe_('version')");
  plhs[0] = mxCreateString(crema_version());
}

/* ---- dispatch ----------------------------------------------------------- */

struct command {
  const char *name;
  void (*run)(MEX_ARGS);
  double calls; /* how often it ran: the test suite checks coverage with it */
};

static struct command commands[] = {
    {"get_solver", get_solver, 0},
    {"delete_solver", delete_solver, 0},
    {"solver_get_attr", solver_get_attr, 0},
    {"solver_get_iter", solver_get_iter, 0},
    {"solver_get_max_iter", solver_get_max_iter, 0},
    {"solver_restore", solver_restore, 0},
    {"solver_solve", solver_solve, 0},
    {"solver_step", solver_step, 0},
    {"get_net", get_net, 0},
    {"delete_net", delete_net, 0},
    {"net_get_attr", net_get_attr, 0},
    {"net_forward", net_forward, 0},
    {"net_backward", net_backward, 0},
    {"net_copy_from", net_copy_from, 0},
    {"net_reshape", net_reshape, 0},
    {"net_save", net_save, 0},
    {"layer_get_attr", layer_get_attr, 0},
    {"layer_get_type", layer_get_type, 0},
    {"blob_get_shape", blob_get_shape, 0},
    {"blob_reshape", blob_reshape, 0},
    {"blob_get_data", blob_get_data, 0},
    {"blob_set_data", blob_set_data, 0},
    {"blob_get_diff", blob_get_diff, 0},
    {"blob_set_diff", blob_set_diff, 0},
    {"set_mode_cpu", set_mode_cpu, 0},
    {"set_mode_gpu", set_mode_gpu, 0},
    {"set_device", set_device, 0},
    {"get_init_key", get_init_key, 0},
    {"reset", reset, 0},
    {"read_mean", read_mean, 0},
    {"write_mean", write_mean, 0},
    {"version", version, 0},
    {NULL, NULL, 0},
};

/* caffe_('command_calls'): a struct of how often each command succeeded. */
static void command_calls(MEX_ARGS) {
  int n = 0, i;
  const char *names[64];
  mxArray *out;
  while (commands[n].name != NULL) {
    names[n] = commands[n].name;
    n++;
  }
  out = mxCreateStructMatrix(1, 1, n, names);
  for (i = 0; i < n; i++) {
    mxSetField(out, 0, names[i], mxCreateDoubleScalar(commands[i].calls));
  }
  plhs[0] = out;
}

void mexFunction(MEX_ARGS) {
  char *cmd;
  int i;
  usage_check(nrhs > 0 && mxIsChar(prhs[0]), "caffe_(api_command, arg1, arg2, ...)");
  cmd = string_arg(prhs[0], "api_command");
  if (strcmp(cmd, "command_calls") == 0) {
    mxFree(cmd);
    command_calls(nlhs, plhs, nrhs - 1, prhs + 1);
    return;
  }
  for (i = 0; commands[i].name != NULL; i++) {
    if (strcmp(commands[i].name, cmd) == 0) {
      mxFree(cmd);
      commands[i].run(nlhs, plhs, nrhs - 1, prhs + 1);
      commands[i].calls += 1; /* not reached when the command raised an error */
      return;
    }
  }
  mexErrMsgIdAndTxt("caffe:usage", "Unknown command '%s'", cmd);
}
