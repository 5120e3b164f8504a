function net = get_net(varargin)
% net = caffe.get_net(model_file, phase_name) or
% net = caffe.get_net(model_file, weights_file, phase_name)
%   Builds a net from model_file and loads weights_file when given;
%   phase_name is 'train' or 'test'.
CHECK(nargin == 2 || nargin == 3, ['usage: ' ...
  'net = get_net(model_file, phase_name) or ' ...
  'net = get_net(model_file, weights_file, phase_name)']);
model_file = varargin{1};
phase_name = varargin{end};
CHECK(ischar(model_file), 'model_file must be a string');
CHECK(ischar(phase_name), 'phase_name must be a string');
CHECK_FILE_EXIST(model_file);
CHECK(strcmp(phase_name, 'train') || strcmp(phase_name, 'test'), ...
  'phase_name can only be ''train'' or ''test''');
net = caffe.Net(caffe_('get_net', model_file, phase_name));
if nargin == 3
  net.copy_from(varargin{2});
end
end
