function status = test_save_and_reload(ctx)
% A net saved from matcaffe reloads with the same parameters and outputs.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
[model, weights] = lenet_paths(ctx);
net = caffe.Net(model, weights, 'test');
% Change one weight so the saved file differs from the one loaded.
w = net.params('ip2', 1).get_data();
w(1, 1) = w(1, 1) + 0.5;
net.params('ip2', 1).set_data(w);
saved = fullfile(ctx.tmp, 'lenet_saved.caffemodel');
net.save(saved);
assert(exist(saved, 'file') == 2);
again = caffe.Net(model, 'test');
again.copy_from(saved);
for name = {'conv1', 'conv2', 'ip1', 'ip2'}
  for i = 1:2
    assert(isequal(net.params(name{1}, i).get_data(), again.params(name{1}, i).get_data()), ...
      sprintf('%s param %d differs after reload', name{1}, i));
  end
end
images = read_mnist(ctx, 't10k', 64);
a = net.forward({images});
b = again.forward({images});
assert(isequal(a{1}, b{1}));
end
