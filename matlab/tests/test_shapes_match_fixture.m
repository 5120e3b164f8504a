function status = test_shapes_match_fixture(ctx)
% LeNet's blob and parameter shapes read through matcaffe equal the fixture
% the Rust C ABI test checks too, reversed (matcaffe's W-first order).
status = [];
if ~ctx.has_data, status = 'shared/data not found'; return; end
model = lenet_paths(ctx);
net = caffe.Net(model, 'test');
fixture = fullfile(ctx.root, 'crates', 'crema-c', 'tests', 'fixtures', 'lenet_shapes.txt');
lines = strsplit(fileread(fixture), sprintf('\n'));
checked = 0;
for i = 1:numel(lines)
  line = strtrim(lines{i});
  if isempty(line) || line(1) == '#', continue; end
  f = strsplit(line);
  if strcmp(f{1}, 'blob')
    dims = cellfun(@str2double, f(3:end));
    got = net.blobs(f{2}).shape();
  else
    dims = cellfun(@str2double, f(4:end));
    got = net.params(f{2}, str2double(f{3}) + 1).shape();
  end
  assert(isequal(got, fliplr(dims)), sprintf('%s: got [%s], fixture [%s] reversed', ...
    line, num2str(got), num2str(dims)));
  checked = checked + 1;
end
assert(checked == 16, sprintf('fixture has %d lines, expected 16', checked));
% The rest of the Net's public face.
assert(strcmp(net.name, 'LeNet'));
assert(isequal(net.inputs, {'data'}) && isequal(net.outputs, {'prob'}));
assert(numel(net.layer_vec) == numel(net.layer_names) && numel(net.layer_names) == 9);
assert(numel(net.blob_vec) == numel(net.blob_names) && numel(net.blob_names) == 8);
assert(strcmp(net.layers('conv1').type(), 'Convolution'));
assert(strcmp(net.layer_vec(2).type(), 'Convolution'));
assert(numel(net.layers('conv1').params) == 2 && isempty(net.layers('pool1').params));
assert(isequal(net.blob_vec(1).shape(), net.blobs('data').shape()));
end
