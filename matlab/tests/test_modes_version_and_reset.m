function status = test_modes_version_and_reset(ctx)
% Mode and device calls (this build warns that it has no GPU), the version,
% and reset_all invalidating every handle made before it.
status = [];
caffe.set_mode_cpu();
warning('off', 'caffe:nogpu');
caffe.set_mode_gpu();
caffe.set_device(0);
warning('on', 'caffe:nogpu');
caffe.set_mode_cpu();
expect_error(@() caffe.set_device(-1), 'device_id must be a non-negative integer');
v = caffe.version();
assert(ischar(v) && ~isempty(regexp(v, '^\d+\.\d+\.\d+', 'once')), sprintf('version "%s"', v));
if ~ctx.has_data, status = 'shared/data not found (modes and version checked)'; return; end
model = lenet_paths(ctx);
net = caffe.Net(model, 'test');
data = net.blobs('data');
caffe.reset_all();
expect_error(@() data.get_data(), 'invalid init_key');
expect_error(@() net.forward_prefilled(), 'invalid init_key');
% New objects work after the reset.
net2 = caffe.Net(model, 'test');
assert(isequal(net2.blobs('data').shape(), [28 28 1 64]));
end
