classdef Solver < handle
  % caffe.Solver: a solver built from a solver prototxt, with its train net
  % (`net`) and test nets (`test_nets`), which it owns.
  %   solver = caffe.Solver(solver_file)

  properties (Access = private)
    hSolver_self
  end
  properties (SetAccess = private)
    net
    test_nets
  end

  methods
    function self = Solver(varargin)
      if ~(nargin == 1 && isstruct(varargin{1}))
        self = caffe.get_solver(varargin{:});
        return
      end
      hSolver_solver = varargin{1};
      CHECK(is_valid_handle(hSolver_solver), 'invalid Solver handle');
      self.hSolver_self = hSolver_solver;
      attributes = caffe_('solver_get_attr', self.hSolver_self);
      self.net = caffe.Net(attributes.hNet_net);
      self.test_nets = [];
      for n = 1:length(attributes.hNet_test_nets)
        test_net = caffe.Net(attributes.hNet_test_nets(n));
        if n == 1
          self.test_nets = test_net;
        else
          self.test_nets(n) = test_net;
        end
      end
    end

    function delete(self)
      if ~isempty(self.hSolver_self) && is_valid_handle(self.hSolver_self)
        caffe_('delete_solver', self.hSolver_self);
      end
      self.hSolver_self = [];
    end

    function iter = iter(self)
      % The number of updates done so far.
      iter = caffe_('solver_get_iter', self.hSolver_self);
    end

    function max_iter = max_iter(self)
      max_iter = caffe_('solver_get_max_iter', self.hSolver_self);
    end

    function restore(self, snapshot_filename)
      CHECK(ischar(snapshot_filename), 'snapshot_filename must be a string');
      CHECK_FILE_EXIST(snapshot_filename);
      caffe_('solver_restore', self.hSolver_self, snapshot_filename);
    end

    function solve(self)
      % Trains to max_iter.
      caffe_('solver_solve', self.hSolver_self);
    end

    function step(self, iters)
      CHECK(isscalar(iters) && iters > 0 && iters == round(iters), ...
        'iters must be a positive integer');
      caffe_('solver_step', self.hSolver_self, double(iters));
    end
  end
end
