function valid = is_valid_handle(hObj)
% valid = is_valid_handle(hObj): whether hObj is a handle struct stamped with
% the current init key. is_valid_handle('get_new_init_key') re-reads the key
% after caffe_('reset'), which makes every older handle invalid.
persistent init_key;
if isempty(init_key)
  init_key = caffe_('get_init_key');
end
if ischar(hObj) && strcmp(hObj, 'get_new_init_key')
  init_key = caffe_('get_init_key');
  valid = true;
  return
end
valid = isstruct(hObj) && isscalar(hObj) && isfield(hObj, 'ptr') ...
  && isfield(hObj, 'init_key') && isa(hObj.ptr, 'uint64') && isscalar(hObj.ptr) ...
  && isscalar(hObj.init_key) && hObj.init_key == init_key;
end
