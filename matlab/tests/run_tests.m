function failed = run_tests()
% failed = run_tests(): runs crema's matcaffe suite and prints one line per
% test, then "octave: N passed, M failed" (scripts/test reads that line).
% Octave:  octave --no-gui --eval "cd matlab/tests; exit(run_tests() > 0)"
here = fileparts(mfilename('fullpath'));
matlab_dir = fileparts(here);
addpath(here);
addpath(matlab_dir);
% Octave does not search a package's private folder; MATLAB does (and
% refuses to add it to the path).
if exist('OCTAVE_VERSION', 'builtin')
  addpath(fullfile(matlab_dir, '+caffe', 'private'));
end

ctx.root = fileparts(matlab_dir);
ctx.data = getenv('CREMA_SHARED_DATA');
if isempty(ctx.data)
  ctx.data = fullfile(ctx.root, '..', 'shared', 'data');
end
ctx.has_data = exist(fullfile(ctx.data, 'MANIFEST.md'), 'file') == 2;
ctx.tmp = tempname();
mkdir(ctx.tmp);

tests = {@test_shapes_match_fixture, @test_lenet_classifies_mnist_t10k, ...
  @test_forward_backward_against_finite_differences, @test_save_and_reload, ...
  @test_solver_loss_falls_then_solve_snapshot_restore, @test_io_images_and_means, ...
  @test_bad_input_raises_errors, @test_modes_version_and_reset, ...
  @test_every_entry_point_ran};
passed = 0;
failed = 0;
for i = 1:numel(tests)
  name = func2str(tests{i});
  try
    status = tests{i}(ctx);
    if ischar(status)
      fprintf('SKIP %s: %s\n', name, status);
    else
      fprintf('PASS %s\n', name);
      passed = passed + 1;
    end
  catch err
    fprintf('FAIL %s: %s\n', name, err.message);
    for k = 1:numel(err.stack)
      fprintf('    at %s line %d\n', err.stack(k).name, err.stack(k).line);
    end
    failed = failed + 1;
  end
end
if exist('OCTAVE_VERSION', 'builtin')
  confirm_recursive_rmdir(false);
end
rmdir(ctx.tmp, 's');
fprintf('octave: %d passed, %d failed\n', passed, failed);
end
