function set_mode_gpu()
% caffe.set_mode_gpu(): Caffe's GPU mode. A crema build without a GPU
% backend warns and keeps computing on the CPU.
caffe_('set_mode_gpu');
end
