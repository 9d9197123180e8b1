//! Python values to engine values: JSON for context dicts and metadata, label values.

use oxapm_core::model::{truncate_keyword, JsonMap, LabelValue, Labels};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use std::borrow::Cow;

/// Nesting deeper than this is cut; context dicts are meant to be shallow.
const MAX_DEPTH: usize = 16;

/// An epoch time in seconds, as Python gives it, in microseconds; `None` unless positive and finite.
pub fn epoch_micros(seconds: Option<f64>) -> Option<u64> {
    seconds.filter(|s| s.is_finite() && *s > 0.0).map(|s| (s * 1e6) as u64)
}

/// Anything that is not a JSON type becomes its `str()`, as Elastic's encoder does.
pub fn to_json(obj: &Bound<'_, PyAny>) -> Value {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> Value {
    if obj.is_none() {
        return Value::Null;
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Value::String(text(s).into_owned());
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Value::from(i);
        }
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value()).map(Value::Number).unwrap_or_else(|| Value::String(f.value().to_string()));
    }
    if depth < MAX_DEPTH {
        if let Ok(d) = obj.cast::<PyDict>() {
            return Value::Object(dict_to_map_at(d, depth + 1));
        }
        // Iterated as lists and tuples, not as iterators: a generic iterator's size hint imports
        // the operator module, which the agent's start does not otherwise need.
        if let Ok(list) = obj.cast::<PyList>() {
            return Value::Array(list.iter().map(|item| to_json_at(&item, depth + 1)).collect());
        }
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            return Value::Array(tuple.iter().map(|item| to_json_at(&item, depth + 1)).collect());
        }
    }
    Value::String(display(obj))
}

pub fn dict_to_map(d: &Bound<'_, PyDict>) -> JsonMap {
    dict_to_map_at(d, 0)
}

fn dict_to_map_at(d: &Bound<'_, PyDict>, depth: usize) -> JsonMap {
    d.iter().map(|(k, v)| (display(&k), to_json_at(&v, depth))).collect()
}

/// `str(obj)`.
pub fn display(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(s) = obj.cast::<PyString>() {
        return text(s).into_owned();
    }
    match obj.str() {
        Ok(s) => text(&s).into_owned(),
        Err(_) => "<unprintable>".to_owned(),
    }
}

/// A Python string's text, borrowed from the string's UTF-8 form where Python keeps one; lone
/// surrogates become U+FFFD.
///
/// pyo3 cannot borrow it under the stable ABI of Python 3.9 (`PyUnicode_AsUTF8AndSize` joined the
/// stable ABI in 3.10) and encodes a copy instead, through the codec registry: that was a good
/// part of the cost of each context dict. The function is exported by every CPython 3 on the
/// platforms with ELF or Mach-O linking, so it is called directly there.
pub fn text<'a>(s: &'a Bound<'_, PyString>) -> Cow<'a, str> {
    #[cfg(not(windows))]
    {
        extern "C" {
            fn PyUnicode_AsUTF8AndSize(unicode: *mut pyo3::ffi::PyObject, size: *mut pyo3::ffi::Py_ssize_t) -> *const std::os::raw::c_char;
        }
        let mut size: pyo3::ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a live str object and the GIL is held; the UTF-8 buffer lives as long as
        // the string, which `'a` borrows.
        let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
        if !data.is_null() {
            // SAFETY: CPython returns `size` bytes of valid UTF-8.
            return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast::<u8>(), size as usize)) });
        }
        // Lone surrogates: no UTF-8 form. The error is dropped; the lossy copy below replaces them.
        drop(PyErr::take(s.py()));
    }
    s.to_string_lossy()
}

/// A JSON value as Python's `json.loads` would give it.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => PyList::new(py, items.iter().map(|item| to_python(py, item)).collect::<PyResult<Vec<_>>>()?)?.into_any(),
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Strings, booleans and numbers are kept (`Decimal` as a float); anything else is stringified.
pub fn label_value(v: &Bound<'_, PyAny>) -> LabelValue {
    if let Ok(b) = v.cast::<PyBool>() {
        return LabelValue::Bool(b.is_true());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return LabelValue::Str(truncate_keyword(&text(s)).into_owned());
    }
    if v.cast::<PyInt>().is_ok() {
        if let Ok(i) = v.extract::<i64>() {
            return LabelValue::Int(i);
        }
    }
    if v.cast::<PyFloat>().is_ok() || is_decimal(v) {
        if let Ok(f) = v.extract::<f64>() {
            return LabelValue::Float(f);
        }
    }
    LabelValue::Str(truncate_keyword(&display(v)).into_owned())
}

fn is_decimal(v: &Bound<'_, PyAny>) -> bool {
    v.get_type().name().map(|n| n.to_string_lossy() == "Decimal").unwrap_or(false)
}

pub fn update_labels(labels: &mut Labels, values: &Bound<'_, PyDict>) {
    for (k, v) in values.iter() {
        labels.set(&display(&k), label_value(&v));
    }
}

/// Merges `data` into the object at `context[key]`, as dict `update` would; `.`, `*` and `"` in
/// the keys of `custom` become `_`.
pub fn merge_context(context: &mut JsonMap, key: &str, data: &Bound<'_, PyDict>, sanitize_keys: bool) {
    let slot = context.entry(key.to_owned()).or_insert_with(|| Value::Object(JsonMap::new()));
    if !slot.is_object() {
        *slot = Value::Object(JsonMap::new());
    }
    if let Value::Object(target) = slot {
        for (k, v) in dict_to_map(data) {
            let k = if sanitize_keys { oxapm_core::model::sanitize_label_key(&k) } else { k };
            target.insert(k, v);
        }
    }
}
