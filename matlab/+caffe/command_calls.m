function calls = command_calls()
% calls = caffe.command_calls(): how many times each caffe_ command has
% completed in this session (a diagnostic; the test suite uses it to show
% that every entry point ran).
calls = caffe_('command_calls');
end
