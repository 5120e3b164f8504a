"""Caffe's protobuf messages for google.protobuf, built at import time from the
schema compiled into crema (so they can never drift from what the engine
reads), with the names protoc's caffe_pb2 has: message classes such as
``NetParameter``, nested enums as class attributes (``PoolingParameter.MAX``),
top-level enum values as module constants (``TRAIN``, ``TEST``).
"""
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.internal import enum_type_wrapper

from .. import _caffe

_file_proto = descriptor_pb2.FileDescriptorProto.FromString(_caffe._caffe_proto_descriptor())
_pool = descriptor_pool.Default()
try:
    DESCRIPTOR = _pool.FindFileByName(_file_proto.name)
except KeyError:
    _pool.Add(_file_proto)
    DESCRIPTOR = _pool.FindFileByName(_file_proto.name)


def _message_class(desc):
    try:  # protobuf >= 4.21
        from google.protobuf.message_factory import GetMessageClass
        return GetMessageClass(desc)
    except ImportError:  # older runtimes
        from google.protobuf import message_factory
        return message_factory.MessageFactory(_pool).GetPrototype(desc)


for _name, _desc in DESCRIPTOR.message_types_by_name.items():
    globals()[_name] = _message_class(_desc)
for _name, _desc in DESCRIPTOR.enum_types_by_name.items():
    globals()[_name] = enum_type_wrapper.EnumTypeWrapper(_desc)
    for _value in _desc.values:
        globals()[_value.name] = _value.number
del _name, _desc
