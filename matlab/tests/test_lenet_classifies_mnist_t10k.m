function status = test_lenet_classifies_mnist_t10k(ctx)
% The trained LeNet classifies all 10000 MNIST t10k images, put in through
% set_data 100 at a time, at the accuracy shared/data/MANIFEST.md states for
% SummerLife iter 10000: 99.12%.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
[model, weights] = lenet_paths(ctx);
net = caffe.get_net(model, weights, 'test');
[images, labels] = read_mnist(ctx, 't10k', 10000);
batch = 100;
net.blobs('data').reshape([28 28 1 batch]);
net.reshape();
assert(isequal(net.blobs('prob').shape(), [10 batch]));
correct = 0;
for first = 1:batch:10000
  idx = first:first + batch - 1;
  net.blobs('data').set_data(images(:, :, :, idx));
  net.forward_prefilled();
  prob = net.blobs('prob').get_data();
  [~, predicted] = max(prob, [], 1);
  correct = correct + sum(predicted(:) - 1 == labels(idx));
end
accuracy = correct / 10000;
fprintf('    LeNet on MNIST t10k: %d / 10000 correct (%.2f%%)\n', correct, 100 * accuracy);
assert(abs(accuracy - 0.9912) <= 0.0002, sprintf('accuracy %.4f, MANIFEST says 0.9912', accuracy));
end
