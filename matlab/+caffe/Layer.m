classdef Layer < handle
  % caffe.Layer: one layer of a net; `params` are its parameter blobs
  % (weights, then bias) as caffe.Blob objects sharing the net's memory.

  properties (Access = private)
    hLayer_self
  end
  properties (SetAccess = private)
    params
  end

  methods
    function self = Layer(hLayer_layer)
      CHECK(is_valid_handle(hLayer_layer), 'invalid Layer handle');
      self.hLayer_self = hLayer_layer;
      attributes = caffe_('layer_get_attr', self.hLayer_self);
      self.params = [];
      for n = 1:length(attributes.hBlob_blobs)
        blob = caffe.Blob(attributes.hBlob_blobs(n));
        if n == 1
          self.params = blob;
        else
          self.params(n) = blob;
        end
      end
    end
    function layer_type = type(self)
      % The layer's type string ('Convolution', 'InnerProduct', ...).
      layer_type = caffe_('layer_get_type', self.hLayer_self);
    end
  end
end
