function set_device(device_id)
% caffe.set_device(device_id): selects the GPU (0-based).
CHECK(isscalar(device_id) && device_id >= 0 && device_id == round(device_id), ...
  'device_id must be a non-negative integer');
caffe_('set_device', double(device_id));
end
