classdef io
  % caffe.io: image and mean file input and output in matcaffe's layout.

  methods (Static)
    function im_data = load_image(im_file)
      % im_data = caffe.io.load_image(im_file): W x H x C single, BGR for
      % color images (C = 3), one channel for gray ones, values 0..255.
      CHECK(ischar(im_file), 'im_file must be a string');
      CHECK_FILE_EXIST(im_file);
      im_data = imread(im_file);
      if size(im_data, 3) == 3
        im_data = im_data(:, :, [3, 2, 1]);
      end
      im_data = single(permute(im_data, [2, 1, 3]));
    end

    function mean_data = read_mean(mean_proto_file)
      % mean_data = caffe.io.read_mean(mean_proto_file): a .binaryproto mean
      % as W x H x C single with BGR channels.
      CHECK(ischar(mean_proto_file), 'mean_proto_file must be a string');
      CHECK_FILE_EXIST(mean_proto_file);
      mean_data = caffe_('read_mean', mean_proto_file);
    end

    function write_mean(mean_data, mean_proto_file)
      % caffe.io.write_mean(mean_data, mean_proto_file): writes W x H x C
      % single data as a 1 x C x H x W .binaryproto.
      CHECK(isa(mean_data, 'single'), 'mean_data must be single');
      CHECK(ischar(mean_proto_file), 'mean_proto_file must be a string');
      caffe_('write_mean', mean_data, mean_proto_file);
    end
  end
end
