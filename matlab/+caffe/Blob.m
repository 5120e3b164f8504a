classdef Blob < handle
  % caffe.Blob: one of a net's blobs or a layer's parameter blob.
  % Arrays are single, with Caffe's dimensions reversed: a blob of shape
  % N x C x H x W reads and writes as a W x H x C x N array.

  properties (Access = private)
    hBlob_self
  end

  methods
    function self = Blob(hBlob_blob)
      CHECK(is_valid_handle(hBlob_blob), 'invalid Blob handle');
      self.hBlob_self = hBlob_blob;
    end
    function shape = shape(self)
      % The shape, reversed from Caffe's (a row vector; [] for a scalar blob).
      shape = caffe_('blob_get_shape', self.hBlob_self);
    end
    function reshape(self, shape)
      % Reshapes to `shape` (reversed order, e.g. [W H C N]).
      CHECK(isempty(shape) || (isnumeric(shape) && isrow(shape)), ...
        'shape must be an integer row vector');
      caffe_('blob_reshape', self.hBlob_self, double(shape));
    end
    function data = get_data(self)
      data = caffe_('blob_get_data', self.hBlob_self);
    end
    function set_data(self, data)
      data = self.checked(data);
      caffe_('blob_set_data', self.hBlob_self, data);
    end
    function diff = get_diff(self)
      diff = caffe_('blob_get_diff', self.hBlob_self);
    end
    function set_diff(self, diff)
      diff = self.checked(diff);
      caffe_('blob_set_diff', self.hBlob_self, diff);
    end
  end

  methods (Access = private)
    function data = checked(self, data)
      % Numeric, of the blob's size (trailing singleton dimensions aside,
      % which MATLAB arrays cannot keep), converted to single.
      CHECK(isnumeric(data) && isreal(data), 'data or diff must be a real numeric array');
      target = self.shape();
      if isempty(target)
        target = [1, 1];
      elseif isscalar(target)
        target = [target, 1];
      end
      given = size(data);
      given = [given, ones(1, length(target) - length(given))];
      CHECK(length(given) == length(target) && all(given == target), ...
        sprintf(['input data/diff size does not match target blob shape, ' ...
        'input data/diff size: [ %s] vs target blob shape: [ %s]'], ...
        sprintf('%d ', given), sprintf('%d ', target)));
      if ~isa(data, 'single')
        data = single(data);
      end
    end
  end
end
