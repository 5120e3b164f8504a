function status = test_bad_input_raises_errors(ctx)
% Wrong shapes, unknown names, deleted handles and bad files raise Octave
% errors with clear messages, and Octave carries on.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
[model, weights] = lenet_paths(ctx);
net = caffe.Net(model, weights, 'test');
data = net.blobs('data');
expect_error(@() data.set_data(zeros(28, 28, 1, 3)), ...
  'input data/diff size: [ 28 28 1 3 ] vs target blob shape: [ 28 28 1 64 ]');
expect_error(@() data.set_diff(ones(3, 3)), 'does not match target blob shape');
expect_error(@() net.blobs('nonexistent'), 'has no blob named ''nonexistent''');
expect_error(@() net.layers('nonexistent'), 'has no layer named ''nonexistent''');
expect_error(@() net.params('conv1', 3), 'layer conv1 has 2 parameter blobs, not 3');
expect_error(@() net.forward({}), 'input data cell length must match');
expect_error(@() caffe.Net(model, 'validation'), 'phase_name can only be');
expect_error(@() caffe.Net('/no/such/file.prototxt', 'test'), ...
  'Could not open file /no/such/file.prototxt');
expect_error(@() net.copy_from(fullfile(ctx.data, 'mnist', 't10k-labels-idx1-ubyte')), ...
  't10k-labels-idx1-ubyte');
expect_error(@() caffe.get_solver(model), 'caffe_');
expect_error(@() data.reshape([1 2; 3 4]), 'shape must be an integer row vector');
% A forged handle with the current key names an object crema never made
% (caffe_ is reachable from here in Octave, where private/ is on the path).
if exist('OCTAVE_VERSION', 'builtin')
  forged = struct('ptr', uint64(987654321), 'init_key', caffe_('get_init_key'));
  expect_error(@() caffe.Blob(forged).get_data(), 'handle 987654321 is not valid');
  expect_error(@() caffe.Layer(forged), 'handle 987654321 is not valid');
end
% After all that, the net still works.
net.forward_prefilled();
conv1 = net.params('conv1', 1);
delete(net);
expect_error(@() conv1.get_data(), 'is not valid');
expect_error(@() data.set_data(zeros(28, 28, 1, 64, 'single')), 'is not valid');
end
