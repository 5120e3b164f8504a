/* A plain C host of crema.h: builds LeNet, runs it, and makes the mistakes a
 * C caller makes (wrong sizes, stale and forged handles, NULL outputs),
 * checking each comes back as a status code and a message.
 * Usage: host LENET_PROTOTXT LENET_CAFFEMODEL   (run by tests/c_host.rs) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crema.h"

static int passed, failed;

static void expect(int ok, const char *what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s (last error: %s)\n", what, crema_last_error());
  }
}

int main(int argc, char **argv) {
  crema_handle net = 0, data = 0, prob = 0, layer = 0;
  size_t count = 0, n = 0, i;
  float *values, probs[640];
  const char *s;
  if (argc != 3) {
    fprintf(stderr, "usage: %s LENET_PROTOTXT LENET_CAFFEMODEL\n", argv[0]);
    return 2;
  }
  expect(strlen(crema_version()) > 0, "version");
  expect(crema_net_new(argv[1], "test", &net) == CREMA_OK, "net_new");
  expect(crema_net_copy_from(net, argv[2]) == CREMA_OK, "copy_from");
  expect(crema_net_name(net, &s) == CREMA_OK && strcmp(s, "LeNet") == 0, "net name");
  expect(crema_net_blob_by_name(net, "data", &data) == CREMA_OK, "blob data");
  expect(crema_blob_count(data, &count) == CREMA_OK && count == 64 * 28 * 28, "data count");

  values = calloc(count, sizeof(float));
  for (i = 0; i < count; i++) {
    values[i] = (float)((i % 28) * (i / 784 % 5)) / 140.0f;
  }
  expect(crema_blob_set_data(data, values, count - 1) == CREMA_ERR_INVALID_ARGUMENT &&
             strstr(crema_last_error(), "50176") != NULL,
         "set_data with one value too few");
  expect(crema_blob_set_data(data, values, count) == CREMA_OK, "set_data");
  expect(crema_net_forward(net, NULL) == CREMA_OK, "forward");
  expect(crema_net_blob_by_name(net, "prob", &prob) == CREMA_OK, "blob prob");
  expect(crema_blob_get_data(prob, probs, 640) == CREMA_OK, "get prob");
  for (i = 0; i < 64; i++) {
    float sum = 0;
    size_t k;
    for (k = 0; k < 10; k++) sum += probs[i * 10 + k];
    if (fabsf(sum - 1.0f) > 1e-4f) {
      expect(0, "softmax rows sum to 1");
      break;
    }
  }
  expect(crema_net_blob_by_name(net, "missing", &prob) == CREMA_ERR_INVALID_ARGUMENT &&
             strstr(crema_last_error(), "no blob named 'missing'") != NULL,
         "unknown blob name");
  expect(crema_net_layer(net, 1, &layer) == CREMA_OK && crema_layer_type(layer, &s) == CREMA_OK &&
             strcmp(s, "Convolution") == 0,
         "layer 1 type");
  expect(crema_net_layer_count(net, NULL) == CREMA_ERR_INVALID_ARGUMENT, "NULL out pointer");
  expect(crema_blob_count(12345678, &n) == CREMA_ERR_INVALID_HANDLE, "forged handle");
  expect(crema_net_forward(data, NULL) == CREMA_ERR_INVALID_HANDLE &&
             strstr(crema_last_error(), "is a blob, not a net") != NULL,
         "blob handle used as a net");
  expect(crema_net_delete(net) == CREMA_OK, "delete");
  expect(crema_blob_get_data(data, values, count) == CREMA_ERR_INVALID_HANDLE, "stale blob");
  expect(crema_layer_type(layer, &s) == CREMA_ERR_INVALID_HANDLE, "stale layer");
  expect(crema_net_new("/no/such.prototxt", "test", &net) == CREMA_ERR_FILE, "missing file");
  free(values);
  printf("c host: %d passed, %d failed\n", passed, failed);
  return failed > 0;
}
