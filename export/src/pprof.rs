//! A profile as pprof's `profile.proto`, gzipped, as `go tool pprof` and its web UI read it.
//!
//! The message (field numbers from profile.proto; every string is an index into
//! `string_table`, whose entry 0 is `""`):
//!
//! ```text
//! Profile  { sample_type: [ValueType] = 1, sample: [Sample] = 2, mapping: [Mapping] = 3,
//!            location: [Location] = 4, function: [Function] = 5, string_table: [string] = 6,
//!            time_nanos = 9, duration_nanos = 10, period_type: ValueType = 11, period = 12,
//!            comment: [int64] = 13 }
//! Sample   { location_id: [uint64] = 1 (LEAF FIRST), value: [int64] = 2, label: [Label] = 3 }
//! Label    { key = 1, str = 2, num = 3, num_unit = 4 }
//! Mapping  { id = 1, filename = 5, build_id = 6, has_functions = 7, has_filenames = 8,
//!            has_line_numbers = 9, has_inline_frames = 10 }
//! Location { id = 1, mapping_id = 2, address = 3, line: [Line] = 4 }  lines innermost first
//! Line     { function_id = 1, line = 2 }
//! Function { id = 1, name = 2, system_name = 3, filename = 4 }
//! ```
//!
//! A location is one address: a frame and the frames inlined into it (`Frame::inlined`) share
//! one location with several lines. The sample's leading frames (`comm`, ...) become root
//! locations of their own, without a mapping, so pprof's flame graph has the same shape as the
//! folded one; `Sample::labels` become pprof labels for `-tagfocus`. Samples with the same
//! locations and labels are merged. Ids are given in order of first use, so the same profile
//! encodes to the same bytes.

use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::protobuf::Message;
use crate::{ExportError, Frame, LabelValue, Profile, Sample, ValueType};

/// The profile as protobuf bytes, not yet gzipped (pprof reads both; files are gzipped).
#[must_use]
pub fn encode_pprof(profile: &Profile) -> Vec<u8> {
    let mut tables = Tables::new(profile);
    for sample in &profile.samples {
        tables.add_sample(sample);
    }
    tables.encode(profile)
}

/// Writes the gzipped profile, as pprof files are stored.
///
/// # Errors
/// [`ExportError::Write`] when the writer fails.
pub fn write_pprof<W: Write>(profile: &Profile, writer: W) -> Result<(), ExportError> {
    let write_error = |source| ExportError::Write { format: "pprof profile", source };
    let mut gzip = GzEncoder::new(writer, Compression::default());
    gzip.write_all(&encode_pprof(profile)).map_err(write_error)?;
    gzip.finish().map_err(write_error)?.flush().map_err(write_error)
}

/// The profile's tables as they are built: everything interned, ids from 1.
struct Tables<'a> {
    profile: &'a Profile,
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<FunctionRow>,
    function_ids: HashMap<FunctionRow, u64>,
    mappings: Vec<MappingRow>,
    mapping_ids: HashMap<String, u64>,
    locations: Vec<LocationRow>,
    location_ids: HashMap<LocationRow, u64>,
    samples: Vec<SampleRow>,
    sample_indices: HashMap<(Vec<u64>, Vec<LabelRow>), usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FunctionRow {
    name: i64,
    filename: i64,
}

struct MappingRow {
    filename: i64,
    build_id: i64,
    has_filenames: bool,
    has_line_numbers: bool,
    has_inline_frames: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LocationRow {
    mapping_id: u64,
    address: u64,
    /// `(function id, line)`, innermost (inlined) first, the caller last.
    lines: Vec<(u64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LabelRow {
    key: i64,
    str: i64,
    num: i64,
    num_unit: i64,
}

struct SampleRow {
    location_ids: Vec<u64>,
    value: i64,
    labels: Vec<LabelRow>,
}

impl<'a> Tables<'a> {
    fn new(profile: &'a Profile) -> Self {
        let mut tables = Tables {
            profile,
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            mappings: Vec::new(),
            mapping_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            samples: Vec::new(),
            sample_indices: HashMap::new(),
        };
        tables.string("");
        tables
    }

    fn string(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(text) {
            return id;
        }
        let id = i64::try_from(self.strings.len()).unwrap_or(i64::MAX);
        self.strings.push(text.to_string());
        self.string_ids.insert(text.to_string(), id);
        id
    }

    fn add_sample(&mut self, sample: &Sample) {
        // The user stack is interned first, root first, so the first mapping is the first
        // sample's executable: pprof takes `mapping[0]` as the main binary ("File:" in -top).
        let user: Vec<u64> = frame_runs(&sample.user).into_iter().map(|run| self.frame_location(run)).collect();
        let kernel: Vec<u64> = frame_runs(&sample.kernel).into_iter().map(|run| self.frame_location(run)).collect();
        let mut location_ids: Vec<u64> = kernel.into_iter().rev().chain(user.into_iter().rev()).collect();
        for name in sample.leading.iter().rev() {
            let function = self.function(name, None);
            location_ids.push(self.location(LocationRow { mapping_id: 0, address: 0, lines: vec![(function, 0)] }));
        }
        let labels: Vec<LabelRow> = sample
            .labels
            .iter()
            .map(|label| {
                let key = self.string(&label.key);
                match &label.value {
                    LabelValue::Str(text) => LabelRow { key, str: self.string(text), num: 0, num_unit: 0 },
                    LabelValue::Num { value, unit } => LabelRow {
                        key,
                        str: 0,
                        num: *value,
                        num_unit: unit.as_deref().map_or(0, |unit| self.string(unit)),
                    },
                }
            })
            .collect();
        let value = i64::try_from(sample.value).unwrap_or(i64::MAX);
        let key = (location_ids, labels);
        if let Some(&index) = self.sample_indices.get(&key) {
            let merged = &mut self.samples[index];
            merged.value = merged.value.saturating_add(value);
            return;
        }
        self.sample_indices.insert(key.clone(), self.samples.len());
        let (location_ids, labels) = key;
        self.samples.push(SampleRow { location_ids, value, labels });
    }

    /// The location of a frame and the frames inlined into it (root to leaf, all one address).
    fn frame_location(&mut self, run: &[Frame]) -> u64 {
        let outer = &run[0];
        let mapping_id = outer.module.as_deref().map_or(0, |module| self.mapping(module));
        let mapping_index = mapping_id.checked_sub(1).and_then(|index| usize::try_from(index).ok());
        if let Some(mapping) = mapping_index.and_then(|index| self.mappings.get_mut(index)) {
            mapping.has_filenames |= run.iter().any(|frame| frame.file.is_some());
            mapping.has_line_numbers |= run.iter().any(|frame| frame.line.is_some());
            mapping.has_inline_frames |= run.len() > 1;
        }
        let address = run.iter().rev().find_map(|frame| frame.address).unwrap_or(0);
        let lines = run
            .iter()
            .rev()
            .map(|frame| (self.function(&frame.name, frame.file.as_deref()), i64::from(frame.line.unwrap_or(0))))
            .collect();
        self.location(LocationRow { mapping_id, address, lines })
    }

    fn location(&mut self, row: LocationRow) -> u64 {
        if let Some(&id) = self.location_ids.get(&row) {
            return id;
        }
        self.locations.push(row.clone());
        let id = self.locations.len() as u64;
        self.location_ids.insert(row, id);
        id
    }

    fn function(&mut self, name: &str, file: Option<&str>) -> u64 {
        let row = FunctionRow { name: self.string(name), filename: file.map_or(0, |file| self.string(file)) };
        if let Some(&id) = self.function_ids.get(&row) {
            return id;
        }
        self.functions.push(row.clone());
        let id = self.functions.len() as u64;
        self.function_ids.insert(row, id);
        id
    }

    fn mapping(&mut self, path: &str) -> u64 {
        if let Some(&id) = self.mapping_ids.get(path) {
            return id;
        }
        let build_id = self
            .profile
            .modules
            .iter()
            .find(|module| module.path == path)
            .and_then(|module| module.build_id.as_deref());
        let row = MappingRow {
            filename: self.string(path),
            build_id: build_id.map_or(0, |build_id| self.string(build_id)),
            has_filenames: false,
            has_line_numbers: false,
            has_inline_frames: false,
        };
        self.mappings.push(row);
        let id = self.mappings.len() as u64;
        self.mapping_ids.insert(path.to_string(), id);
        id
    }

    fn value_type(&mut self, value_type: &ValueType) -> Message {
        let mut message = Message::new();
        message.int64(1, self.string(&value_type.kind));
        message.int64(2, self.string(&value_type.unit));
        message
    }

    fn encode(mut self, profile: &Profile) -> Vec<u8> {
        let mut out = Message::new();
        let sample_type = self.value_type(&profile.sample_type);
        out.message(1, &sample_type);
        self.encode_samples(&mut out);
        self.encode_mappings(&mut out);
        self.encode_locations(&mut out);
        self.encode_functions(&mut out);
        out.int64(9, profile.time_nanos);
        out.int64(10, profile.duration_nanos);
        let (period_type, period) = match &profile.period {
            Some(period) => (self.value_type(&period.kind), period.every),
            None => (self.value_type(&profile.sample_type), 1),
        };
        out.message(11, &period_type);
        out.int64(12, period);
        let mut comments = Vec::new();
        if !profile.title.is_empty() {
            comments.push(self.string(&profile.title));
        }
        if let Some(script) = &profile.script {
            comments.push(self.string(script));
        }
        out.packed(13, comments.into_iter().map(|index| u64::try_from(index).unwrap_or(0)));
        // Last, once every string is in the table.
        for text in &self.strings {
            out.bytes(6, text.as_bytes());
        }
        out.into_bytes()
    }

    fn encode_samples(&self, out: &mut Message) {
        for sample in &self.samples {
            let mut message = Message::new();
            message.packed(1, sample.location_ids.iter().copied());
            message.packed(2, [u64::from_ne_bytes(sample.value.to_ne_bytes())]);
            for label in &sample.labels {
                let mut label_message = Message::new();
                label_message.int64(1, label.key);
                label_message.int64(2, label.str);
                label_message.int64(3, label.num);
                label_message.int64(4, label.num_unit);
                message.message(3, &label_message);
            }
            out.message(2, &message);
        }
    }

    fn encode_mappings(&self, out: &mut Message) {
        for (id, mapping) in (1u64..).zip(&self.mappings) {
            let mut message = Message::new();
            message.uint64(1, id);
            message.int64(5, mapping.filename);
            message.int64(6, mapping.build_id);
            // Frames arrive symbolized: pprof must not try to symbolize them again.
            message.bool(7, true);
            message.bool(8, mapping.has_filenames);
            message.bool(9, mapping.has_line_numbers);
            message.bool(10, mapping.has_inline_frames);
            out.message(3, &message);
        }
    }

    fn encode_locations(&self, out: &mut Message) {
        for (id, location) in (1u64..).zip(&self.locations) {
            let mut message = Message::new();
            message.uint64(1, id);
            message.uint64(2, location.mapping_id);
            message.uint64(3, location.address);
            for &(function_id, line) in &location.lines {
                let mut line_message = Message::new();
                line_message.uint64(1, function_id);
                line_message.int64(2, line);
                message.message(4, &line_message);
            }
            out.message(4, &message);
        }
    }

    fn encode_functions(&self, out: &mut Message) {
        for (id, function) in (1u64..).zip(&self.functions) {
            let mut message = Message::new();
            message.uint64(1, id);
            message.int64(2, function.name);
            message.int64(3, function.name);
            message.int64(4, function.filename);
            out.message(5, &message);
        }
    }
}

/// Splits root-to-leaf frames into locations: each frame that was not inlined starts one, and
/// the frames inlined into it (those after it with `inlined` set) join it.
pub(crate) fn frame_runs(frames: &[Frame]) -> Vec<&[Frame]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (index, frame) in frames.iter().enumerate().skip(1) {
        if !frame.inlined {
            runs.push(&frames[start..index]);
            start = index;
        }
    }
    if start < frames.len() {
        runs.push(&frames[start..]);
    }
    runs
}

#[cfg(test)]
#[path = "pprof_tests.rs"]
mod tests;
