function status = test_io_images_and_means(ctx)
% caffe.io: load_image gives W x H x C BGR single; read_mean reads the
% ImageNet mean (per-channel BGR means about 104/117/123, as MANIFEST.md
% says); write_mean round-trips.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
file = fullfile(ctx.data, 'images', 'cat.jpg');
info = imfinfo(file);
im = caffe.io.load_image(file);
assert(isa(im, 'single'));
assert(isequal(size(im), [info.Width, info.Height, 3]));
raw = imread(file);
% matcaffe pixel (w, h, c) is the image's row h, column w, channel 4 - c.
assert(im(7, 3, 1) == raw(3, 7, 3) && im(7, 3, 3) == raw(3, 7, 1));
assert(im(info.Width, info.Height, 2) == raw(info.Height, info.Width, 2));

mean_data = caffe.io.read_mean(fullfile(ctx.data, 'ilsvrc12', 'imagenet_mean.binaryproto'));
assert(isa(mean_data, 'single') && isequal(size(mean_data), [256 256 3]));
channel_means = squeeze(mean(mean(mean_data, 1), 2))';
fprintf('    ImageNet mean per channel (BGR): %.1f %.1f %.1f\n', channel_means);
assert(all(abs(channel_means - [104 117 123]) < 1.5));

small = single(reshape(0:23, [4 3 2]));
out = fullfile(ctx.tmp, 'small_mean.binaryproto');
caffe.io.write_mean(small, out);
assert(isequal(caffe.io.read_mean(out), small));
gray = single(magic(5));
caffe.io.write_mean(gray, out);
assert(isequal(caffe.io.read_mean(out), gray));
end
