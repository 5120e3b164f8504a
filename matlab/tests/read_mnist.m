function [images, labels] = read_mnist(ctx, set_name, count)
% [images, labels] = read_mnist(ctx, 't10k' or 'train', count): the first
% `count` MNIST images as a 28 x 28 x 1 x count single array in matcaffe's
% layout (W x H x C x N, scaled by 1/256 as LeNet was trained) and their
% labels (count x 1 double). IDX files are big-endian, row-major images,
% which read column-major are already W x H.
d = fullfile(ctx.data, 'mnist');
f = fopen(fullfile(d, sprintf('%s-images-idx3-ubyte', set_name)), 'r', 'ieee-be');
header = fread(f, 4, 'int32');
assert(header(1) == 2051, 'not an IDX image file');
count = min(count, header(2));
pixels = fread(f, header(3) * header(4) * count, 'uint8=>uint8');
fclose(f);
images = reshape(single(pixels) * single(0.00390625), header(4), header(3), 1, count);
f = fopen(fullfile(d, sprintf('%s-labels-idx1-ubyte', set_name)), 'r', 'ieee-be');
header = fread(f, 2, 'int32');
assert(header(1) == 2049, 'not an IDX label file');
labels = double(fread(f, count, 'uint8'));
fclose(f);
end
