function version_str = version()
% version_str = caffe.version(): the version of the crema library behind caffe_.
version_str = caffe_('version');
end
