function status = test_every_entry_point_ran(ctx)
% Every caffe_ command the issue lists completed at least once in this run
% (counted by the MEX gateway itself). Runs last.
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
listed = {'get_solver', 'delete_solver', 'solver_get_attr', 'solver_get_iter', ...
  'solver_restore', 'solver_solve', 'solver_step', 'get_net', 'delete_net', ...
  'net_get_attr', 'net_forward', 'net_backward', 'net_copy_from', 'net_reshape', ...
  'net_save', 'layer_get_attr', 'layer_get_type', 'blob_get_shape', 'blob_reshape', ...
  'blob_get_data', 'blob_set_data', 'blob_get_diff', 'blob_set_diff', 'set_mode_cpu', ...
  'set_mode_gpu', 'set_device', 'get_init_key', 'reset', 'read_mean', 'write_mean', ...
  'version'};
calls = caffe.command_calls();
missing = {};
for i = 1:numel(listed)
  if ~isfield(calls, listed{i}) || calls.(listed{i}) < 1
    missing{end + 1} = listed{i};
  end
end
assert(isempty(missing), sprintf('never ran: %s', strjoin(missing, ', ')));
end
