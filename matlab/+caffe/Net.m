classdef Net < handle
  % caffe.Net: a network built from a prototxt.
  %   net = caffe.Net(model_file, phase)                 phase: 'train' or 'test'
  %   net = caffe.Net(model_file, weights_file, phase)
  % Blobs and parameters are caffe.Blob objects sharing the net's memory.

  properties (Access = private)
    hNet_self
    name2layer_index
    name2blob_index
  end
  properties (SetAccess = private)
    layer_vec
    blob_vec
    inputs
    outputs
    layer_names
    blob_names
    name
  end

  methods
    function self = Net(varargin)
      if ~(nargin == 1 && isstruct(varargin{1}))
        % From files: caffe.get_net builds it and comes back here with a handle.
        self = caffe.get_net(varargin{:});
        return
      end
      hNet_net = varargin{1};
      CHECK(is_valid_handle(hNet_net), 'invalid Net handle');
      self.hNet_self = hNet_net;
      attributes = caffe_('net_get_attr', self.hNet_self);

      self.layer_vec = [];
      for n = 1:length(attributes.hLayer_layers)
        layer = caffe.Layer(attributes.hLayer_layers(n));
        if n == 1
          self.layer_vec = layer;
        else
          self.layer_vec(n) = layer;
        end
      end
      self.blob_vec = [];
      for n = 1:length(attributes.hBlob_blobs)
        blob = caffe.Blob(attributes.hBlob_blobs(n));
        if n == 1
          self.blob_vec = blob;
        else
          self.blob_vec(n) = blob;
        end
      end

      self.layer_names = attributes.layer_names;
      self.blob_names = attributes.blob_names;
      self.name = attributes.name;
      % Caffe's indices are 0-based.
      self.inputs = attributes.blob_names(attributes.input_blob_indices + 1);
      self.outputs = attributes.blob_names(attributes.output_blob_indices + 1);
      self.name2layer_index = name_map(self.layer_names);
      self.name2blob_index = name_map(self.blob_names);
    end

    function delete(self)
      % A solver's nets belong to the solver: crema leaves those alone, and
      % they may already be gone with it, as is every handle from before
      % caffe.reset_all. A destructor must not raise, so those are skipped.
      if ~isempty(self.hNet_self) && is_valid_handle(self.hNet_self)
        try
          caffe_('delete_net', self.hNet_self);
        catch
        end
      end
      self.hNet_self = [];
    end

    function layer = layers(self, layer_name)
      CHECK(ischar(layer_name), 'layer_name must be a string');
      CHECK(isKey(self.name2layer_index, layer_name), ...
        sprintf('net %s has no layer named ''%s''', self.name, layer_name));
      layer = self.layer_vec(self.name2layer_index(layer_name));
    end

    function blob = blobs(self, blob_name)
      CHECK(ischar(blob_name), 'blob_name must be a string');
      CHECK(isKey(self.name2blob_index, blob_name), ...
        sprintf('net %s has no blob named ''%s'' (its blobs: %s)', self.name, ...
        blob_name, strjoin(self.blob_names', ', ')));
      blob = self.blob_vec(self.name2blob_index(blob_name));
    end

    function blob = params(self, layer_name, blob_index)
      % Parameter blob blob_index (1: weights, 2: bias) of layer layer_name.
      CHECK(isscalar(blob_index), 'blob_index must be a scalar');
      layer = self.layers(layer_name);
      CHECK(blob_index >= 1 && blob_index <= numel(layer.params), ...
        sprintf('layer %s has %d parameter blobs, not %d', layer_name, ...
        numel(layer.params), blob_index));
      blob = layer.params(blob_index);
    end

    function forward_prefilled(self)
      caffe_('net_forward', self.hNet_self);
    end

    function backward_prefilled(self)
      caffe_('net_backward', self.hNet_self);
    end

    function res = forward(self, input_data)
      % res = forward({input1, ...}): sets the inputs, runs forward, returns
      % the outputs as a cell array.
      CHECK(iscell(input_data), 'input_data must be a cell array');
      CHECK(length(input_data) == length(self.inputs), ...
        'input data cell length must match input blob number');
      for n = 1:length(self.inputs)
        self.blobs(self.inputs{n}).set_data(input_data{n});
      end
      self.forward_prefilled();
      res = cell(length(self.outputs), 1);
      for n = 1:length(self.outputs)
        res{n} = self.blobs(self.outputs{n}).get_data();
      end
    end

    function res = backward(self, output_diff)
      % res = backward({diff1, ...}): sets the output diffs, runs backward,
      % returns the input diffs as a cell array.
      CHECK(iscell(output_diff), 'output_diff must be a cell array');
      CHECK(length(output_diff) == length(self.outputs), ...
        'output diff cell length must match output blob number');
      for n = 1:length(self.outputs)
        self.blobs(self.outputs{n}).set_diff(output_diff{n});
      end
      self.backward_prefilled();
      res = cell(length(self.inputs), 1);
      for n = 1:length(self.inputs)
        res{n} = self.blobs(self.inputs{n}).get_diff();
      end
    end

    function copy_from(self, weights_file)
      CHECK(ischar(weights_file), 'weights_file must be a string');
      CHECK_FILE_EXIST(weights_file);
      caffe_('net_copy_from', self.hNet_self, weights_file);
    end

    function reshape(self)
      caffe_('net_reshape', self.hNet_self);
    end

    function save(self, weights_file)
      CHECK(ischar(weights_file), 'weights_file must be a string');
      caffe_('net_save', self.hNet_self, weights_file);
    end
  end
end

function map = name_map(names)
% name -> 1-based index; the first of repeated names wins, as in Caffe.
map = containers.Map('KeyType', 'char', 'ValueType', 'double');
for n = numel(names):-1:1
  map(names{n}) = n;
end
end
