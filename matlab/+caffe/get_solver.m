function solver = get_solver(solver_file)
% solver = caffe.get_solver(solver_file)
%   Builds a solver (and its nets) from a solver prototxt.
CHECK(ischar(solver_file), 'solver_file must be a string');
CHECK_FILE_EXIST(solver_file);
solver = caffe.Solver(caffe_('get_solver', solver_file));
end
