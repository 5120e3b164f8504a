//! Stand-in for `backend.rs` when crema is built without the `hdf5` feature:
//! the same API, where opening or creating a file is the one error and the
//! file types cannot exist.
use std::path::Path;

use super::NO_HDF5;

pub enum ReadFile {}

impl ReadFile {
    pub fn open(_path: &Path) -> Result<Self, String> {
        Err(NO_HDF5.into())
    }
    pub fn member_names(&self, _group: &str) -> Result<Vec<String>, String> {
        match *self {}
    }
    pub fn exists(&self, _name: &str) -> bool {
        match *self {}
    }
    pub fn read_f32(&self, _name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        match *self {}
    }
    pub fn read_i32(&self, _name: &str) -> Result<i32, String> {
        match *self {}
    }
    pub fn read_string(&self, _name: &str) -> Result<String, String> {
        match *self {}
    }
    pub fn read_u8(&self, _name: &str) -> Result<Vec<u8>, String> {
        match *self {}
    }
}

pub enum WriteFile {}

impl WriteFile {
    pub fn create(_path: &Path) -> Result<Self, String> {
        Err(NO_HDF5.into())
    }
    pub fn create_group(&self, _name: &str) -> Result<(), String> {
        match *self {}
    }
    pub fn write_f32(&self, _name: &str, _shape: &[usize], _data: &[f32]) -> Result<(), String> {
        match *self {}
    }
    pub fn write_i32(&self, _name: &str, _value: i32) -> Result<(), String> {
        match *self {}
    }
    pub fn write_u8(&self, _name: &str, _data: &[u8]) -> Result<(), String> {
        match *self {}
    }
    pub fn write_string(&self, _name: &str, _value: &str) -> Result<(), String> {
        match *self {}
    }
    pub fn close(self) -> Result<(), String> {
        match self {}
    }
}
