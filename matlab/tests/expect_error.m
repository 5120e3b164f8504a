function expect_error(fn, fragment)
% expect_error(@() ..., fragment): fn must raise an error whose message
% contains fragment.
try
  fn();
catch err
  assert(~isempty(strfind(err.message, fragment)), ...
    sprintf('error "%s" does not mention "%s"', err.message, fragment));
  return
end
error('expected an error mentioning "%s", got none', fragment);
end
