function status = test_forward_backward_against_finite_differences(ctx)
% forward()/backward() with cells, and the input gradient backward() returns
% matches central differences of forward() on the pixels it says matter most.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
[model, weights] = lenet_paths(ctx);
% Caffe computes input gradients of a deploy net only with force_backward.
forced = fullfile(ctx.tmp, 'lenet_force_backward.prototxt');
f = fopen(forced, 'w');
fprintf(f, 'force_backward: true\n%s', fileread(model));
fclose(f);
net = caffe.Net(forced, weights, 'test');
net.blobs('data').reshape([28 28 1 1]);
net.reshape();
images = read_mnist(ctx, 't10k', 1);
out = net.forward({images});
assert(iscell(out) && isequal(size(out{1}), [10 1]));
assert(abs(sum(out{1}) - 1) < 1e-5, 'softmax does not sum to 1');
[~, k] = max(out{1});
% d prob(k) / d data
top_diff = zeros(10, 1, 'single');
top_diff(k) = 1;
grads = net.backward({top_diff});
g = grads{1};
assert(isequal(size(g), [28 28]) && all(isfinite(g(:))) && any(g(:) ~= 0));
% The same through the prefilled calls and get_diff.
net.blobs('prob').set_diff(top_diff);
net.backward_prefilled();
assert(isequal(net.blobs('data').get_diff(), g));

[~, order] = sort(abs(g(:)), 'descend');
eps = 1e-2;
for j = 1:3
  p = order(j);
  plus = images; plus(p) = plus(p) + eps;
  minus = images; minus(p) = minus(p) - eps;
  op = net.forward({plus});
  om = net.forward({minus});
  numeric = (double(op{1}(k)) - double(om{1}(k))) / (2 * eps);
  assert(abs(numeric - g(p)) <= 0.05 * abs(g(p)) + 1e-4, ...
    sprintf('pixel %d: backward %.6g, finite difference %.6g', p, g(p), numeric));
end
end
