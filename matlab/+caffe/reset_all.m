function reset_all()
% caffe.reset_all(): deletes every solver and net; handles made before
% become invalid.
caffe_('reset');
is_valid_handle('get_new_init_key');
end
