function CHECK(expr, error_msg)
% CHECK(expr, error_msg): raises error_msg unless expr holds.
if ~expr
  error('caffe:check', '%s', error_msg);
end
end
