function CHECK_FILE_EXIST(filename)
% CHECK_FILE_EXIST(filename): raises an error naming the file unless it exists.
if exist(filename, 'file') == 0
  error('caffe:file', 'Could not open file %s', filename);
end
end
