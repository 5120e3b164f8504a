function [model, weights] = lenet_paths(ctx)
% The LeNet deploy prototxt and its 10000-iteration weights (SummerLife).
d = fullfile(ctx.data, 'models', 'lenet_summerlife');
model = fullfile(d, 'lenet.prototxt');
weights = fullfile(d, 'lenet_iter_10000.caffemodel');
end
