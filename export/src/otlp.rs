//! A profile as an OTLP profiles export request (`opentelemetry.proto.collector.profiles.
//! v1development.ExportProfilesServiceRequest`, the messages of opentelemetry-proto v1.10.0 as
//! the `opentelemetry-proto` crate 0.33 generates them), for an OpenTelemetry Collector or any
//! OTLP profiles receiver.
//!
//! Shape: one `ResourceProfiles` per process (the samples' `pid` label; samples without one, such
//! as the kernel's idle stacks, go to the host's resource), each with one `ScopeProfiles` (scope
//! `rbt`) holding one `Profile` of the interval. Every table lives in the request's shared
//! `ProfilesDictionary`, whose entry 0 is the zero value the format requires. As in the pprof
//! export, a frame and the frames inlined into it share one location with several lines (leaf
//! first), the sample's leading frames (`comm`, ...) become root locations without a mapping,
//! and the other labels become sample attributes. Mappings carry their build id
//! (`process.executable.build_id.gnu`), locations their frame type (`profile.frame.type`:
//! `kernel` or `native`), as the OpenTelemetry eBPF profiler writes them.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::profiles::v1development as pb;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::pprof::frame_runs;
use crate::{Frame, LabelValue, Profile};

/// The attributes of a resource, as `(key, value)` strings or integers.
pub type Attributes = Vec<(String, AttributeValue)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Str(String),
    Int(i64),
}

/// The request's bytes (protobuf, not compressed), as OTLP/HTTP and gRPC carry them.
#[must_use]
pub fn encode_otlp(profile: &Profile, host: &Attributes, process: &dyn Fn(u32) -> Attributes) -> Vec<u8> {
    otlp_request(profile, host, process).encode_to_vec()
}

/// The export request for `profile`: `host` names the machine (`host.name`, `service.name`),
/// `process(pid)` each process its samples come from (`process.pid`,
/// `process.executable.name`, `container.id`...), added to the host's.
#[must_use]
pub fn otlp_request(
    profile: &Profile,
    host: &Attributes,
    process: &dyn Fn(u32) -> Attributes,
) -> ExportProfilesServiceRequest {
    let mut tables = Tables::default();
    let sample_type = pb::ValueType {
        type_strindex: tables.string(&profile.sample_type.kind),
        unit_strindex: tables.string(&profile.sample_type.unit),
    };
    let (period_type, period) = match &profile.period {
        Some(p) => (
            Some(pb::ValueType {
                type_strindex: tables.string(&p.kind.kind),
                unit_strindex: tables.string(&p.kind.unit),
            }),
            p.every,
        ),
        None => (None, 0),
    };
    // Samples by process, in order of first appearance, so the same profile encodes the same.
    let mut by_pid: Vec<(Option<u32>, Vec<pb::Sample>)> = Vec::new();
    for sample in &profile.samples {
        let pid = sample.labels.iter().find_map(|l| match (&l.key[..], &l.value) {
            ("pid", LabelValue::Num { value, .. }) => u32::try_from(*value).ok(),
            _ => None,
        });
        let stack_index = tables.stack(sample);
        let attribute_indices = sample
            .labels
            .iter()
            .filter(|l| l.key != "pid")
            .map(|l| {
                let value = match &l.value {
                    LabelValue::Str(s) => any_value::Value::StringValue(s.clone()),
                    LabelValue::Num { value, .. } => any_value::Value::IntValue(*value),
                };
                let unit = match &l.value {
                    LabelValue::Num { unit: Some(unit), .. } => unit.as_str(),
                    _ => "",
                };
                tables.attribute(&l.key, value, unit)
            })
            .collect();
        let row = pb::Sample {
            stack_index,
            attribute_indices,
            link_index: 0,
            values: vec![i64::try_from(sample.value).unwrap_or(i64::MAX)],
            timestamps_unix_nano: Vec::new(),
        };
        match by_pid.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, samples)) => samples.push(row),
            None => by_pid.push((pid, vec![row])),
        }
    }
    let resource_profiles = by_pid
        .into_iter()
        .map(|(pid, samples)| {
            let mut attributes: Vec<KeyValue> = host.iter().map(key_value).collect();
            if let Some(pid) = pid {
                for attribute in process(pid) {
                    // The process's own (a `service.name` from its label) replaces the host's.
                    attributes.retain(|kv| kv.key != attribute.0);
                    attributes.push(key_value(&attribute));
                }
            }
            pb::ResourceProfiles {
                resource: Some(Resource { attributes, dropped_attributes_count: 0, entity_refs: Vec::new() }),
                scope_profiles: vec![pb::ScopeProfiles {
                    scope: Some(InstrumentationScope {
                        name: "rbt".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    profiles: vec![pb::Profile {
                        sample_type: Some(sample_type),
                        samples,
                        time_unix_nano: u64::try_from(profile.time_nanos).unwrap_or(0),
                        duration_nano: u64::try_from(profile.duration_nanos).unwrap_or(0),
                        period_type,
                        period,
                        ..pb::Profile::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    let build_ids: HashMap<&str, &str> =
        profile.modules.iter().filter_map(|m| Some((m.path.as_str(), m.build_id.as_deref()?))).collect();
    tables.set_build_ids(&build_ids);
    ExportProfilesServiceRequest { resource_profiles, dictionary: Some(tables.dictionary) }
}

fn key_value((key, value): &(String, AttributeValue)) -> KeyValue {
    let value = match value {
        AttributeValue::Str(s) => any_value::Value::StringValue(s.clone()),
        AttributeValue::Int(i) => any_value::Value::IntValue(*i),
    };
    KeyValue { key: key.clone(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

/// A location's identity: mapping, address, (function, line) leaf first, kernel frame.
type LocationKey = (i32, u64, Vec<(i32, i64)>, bool);

/// The dictionary being built, each table with its zero value first, and indices by content.
struct Tables {
    dictionary: pb::ProfilesDictionary,
    strings: HashMap<String, i32>,
    functions: HashMap<(i32, i32), i32>,
    mappings: HashMap<String, i32>,
    locations: HashMap<LocationKey, i32>,
    stacks: HashMap<Vec<i32>, i32>,
    attributes: HashMap<(i32, String, i32), i32>,
}

impl Default for Tables {
    fn default() -> Self {
        let dictionary = pb::ProfilesDictionary {
            mapping_table: vec![pb::Mapping::default()],
            location_table: vec![pb::Location::default()],
            function_table: vec![pb::Function::default()],
            link_table: vec![pb::Link::default()],
            string_table: vec![String::new()],
            attribute_table: vec![pb::KeyValueAndUnit::default()],
            stack_table: vec![pb::Stack::default()],
        };
        Tables {
            dictionary,
            strings: HashMap::from([(String::new(), 0)]),
            functions: HashMap::new(),
            mappings: HashMap::new(),
            locations: HashMap::new(),
            stacks: HashMap::new(),
            attributes: HashMap::new(),
        }
    }
}

fn index(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

impl Tables {
    fn string(&mut self, text: &str) -> i32 {
        if let Some(&i) = self.strings.get(text) {
            return i;
        }
        let i = index(self.dictionary.string_table.len());
        self.dictionary.string_table.push(text.to_owned());
        self.strings.insert(text.to_owned(), i);
        i
    }

    fn attribute(&mut self, key: &str, value: any_value::Value, unit: &str) -> i32 {
        let key_strindex = self.string(key);
        let unit_strindex = self.string(unit);
        let identity = (key_strindex, format!("{value:?}"), unit_strindex);
        if let Some(&i) = self.attributes.get(&identity) {
            return i;
        }
        let i = index(self.dictionary.attribute_table.len());
        self.dictionary.attribute_table.push(pb::KeyValueAndUnit {
            key_strindex,
            value: Some(AnyValue { value: Some(value) }),
            unit_strindex,
        });
        self.attributes.insert(identity, i);
        i
    }

    fn function(&mut self, name: &str, file: Option<&str>) -> i32 {
        let name_strindex = self.string(name);
        let filename_strindex = file.map_or(0, |f| self.string(f));
        if let Some(&i) = self.functions.get(&(name_strindex, filename_strindex)) {
            return i;
        }
        let i = index(self.dictionary.function_table.len());
        self.dictionary.function_table.push(pb::Function {
            name_strindex,
            system_name_strindex: name_strindex,
            filename_strindex,
            start_line: 0,
        });
        self.functions.insert((name_strindex, filename_strindex), i);
        i
    }

    fn mapping(&mut self, module: &str) -> i32 {
        if let Some(&i) = self.mappings.get(module) {
            return i;
        }
        let filename_strindex = self.string(module);
        let i = index(self.dictionary.mapping_table.len());
        self.dictionary.mapping_table.push(pb::Mapping { filename_strindex, ..pb::Mapping::default() });
        self.mappings.insert(module.to_owned(), i);
        i
    }

    /// Each mapping's build id as its attribute, once every mapping is known.
    fn set_build_ids(&mut self, build_ids: &HashMap<&str, &str>) {
        let modules: Vec<(String, i32)> = self.mappings.iter().map(|(m, &i)| (m.clone(), i)).collect();
        for (module, i) in modules {
            if let Some(id) = build_ids.get(module.as_str()) {
                let attribute = self.attribute(
                    "process.executable.build_id.gnu",
                    any_value::Value::StringValue((*id).to_owned()),
                    "",
                );
                if let Some(mapping) = usize::try_from(i).ok().and_then(|i| self.dictionary.mapping_table.get_mut(i)) {
                    mapping.attribute_indices = vec![attribute];
                }
            }
        }
    }

    /// A frame and those inlined into it (root to leaf, one address): one location.
    fn location(&mut self, run: &[Frame], kernel: bool) -> i32 {
        let outer = &run[0];
        let mapping_index = outer.module.as_deref().map_or(0, |m| self.mapping(m));
        let address = run.iter().rev().find_map(|f| f.address).unwrap_or(0);
        let lines: Vec<(i32, i64)> = run
            .iter()
            .rev()
            .map(|f| (self.function(&f.name, f.file.as_deref()), i64::from(f.line.unwrap_or(0))))
            .collect();
        self.location_row(mapping_index, address, lines, Some(kernel))
    }

    fn location_row(&mut self, mapping_index: i32, address: u64, lines: Vec<(i32, i64)>, kernel: Option<bool>) -> i32 {
        let key = (mapping_index, address, lines, kernel.unwrap_or(false));
        if let Some(&i) = self.locations.get(&key) {
            return i;
        }
        let attribute_indices = match kernel {
            Some(kernel) => {
                let kind = if kernel { "kernel" } else { "native" };
                vec![self.attribute("profile.frame.type", any_value::Value::StringValue(kind.into()), "")]
            }
            None => Vec::new(),
        };
        let i = index(self.dictionary.location_table.len());
        self.dictionary.location_table.push(pb::Location {
            mapping_index,
            address,
            lines: key.2.iter().map(|&(function_index, line)| pb::Line { function_index, line, column: 0 }).collect(),
            attribute_indices,
        });
        self.locations.insert(key, i);
        i
    }

    /// The sample's stack, leaf first: kernel frames, user frames, then the leading frames.
    fn stack(&mut self, sample: &crate::Sample) -> i32 {
        let user: Vec<i32> = frame_runs(&sample.user).into_iter().map(|run| self.location(run, false)).collect();
        let kernel: Vec<i32> = frame_runs(&sample.kernel).into_iter().map(|run| self.location(run, true)).collect();
        let mut locations: Vec<i32> = kernel.into_iter().rev().chain(user.into_iter().rev()).collect();
        for name in sample.leading.iter().rev() {
            let function = self.function(name, None);
            locations.push(self.location_row(0, 0, vec![(function, 0)], None));
        }
        if let Some(&i) = self.stacks.get(&locations) {
            return i;
        }
        let i = index(self.dictionary.stack_table.len());
        self.dictionary.stack_table.push(pb::Stack { location_indices: locations.clone() });
        self.stacks.insert(locations, i);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Label, Module, Sample, ValueType};

    fn profile() -> Profile {
        let sample = |pid: u32, value: u64, leaf: &str| Sample {
            leading: vec!["worker".into()],
            user: vec![
                Frame::new("main").in_module("/usr/bin/worker").at_address(0x1000),
                Frame::new(leaf).in_module("/usr/bin/worker").at_address(0x1100),
            ],
            kernel: vec![Frame::new("entry_SYSCALL_64").in_module("[kernel.kallsyms]").at_address(0xffff_0000)],
            value,
            labels: vec![Label::pid(pid), Label::comm("worker")],
        };
        Profile {
            sample_type: ValueType::new("offcpu", "nanoseconds"),
            time_nanos: 1_000,
            duration_nanos: 10_000_000_000,
            modules: vec![Module { path: "/usr/bin/worker".into(), build_id: Some("abcd".into()) }],
            samples: vec![sample(7, 5, "read"), sample(8, 3, "read"), sample(7, 2, "write")],
            ..Profile::default()
        }
    }

    #[test]
    fn samples_go_to_their_processes_and_share_the_dictionary() {
        let host: Attributes = vec![("host.name".into(), AttributeValue::Str("box".into()))];
        let process = |pid: u32| vec![("process.pid".to_owned(), AttributeValue::Int(i64::from(pid)))];
        let request = otlp_request(&profile(), &host, &process);
        let bytes = request.encode_to_vec();
        assert_eq!(ExportProfilesServiceRequest::decode(&bytes[..]).expect("decodes"), request);
        assert_eq!(request.resource_profiles.len(), 2, "pids 7 and 8");
        let d = request.dictionary.as_ref().expect("a dictionary");
        // Every table starts with its zero value.
        assert_eq!(d.string_table[0], "");
        assert_eq!(d.location_table[0], pb::Location::default());
        assert_eq!(d.stack_table[0], pb::Stack::default());
        let first = &request.resource_profiles[0];
        let attrs: Vec<&str> =
            first.resource.as_ref().expect("a resource").attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(attrs, ["host.name", "process.pid"]);
        let p = &first.scope_profiles[0].profiles[0];
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples.iter().map(|s| s.values[0]).sum::<i64>(), 7);
        assert_eq!(d.string_table[p.sample_type.expect("a type").type_strindex as usize], "offcpu");
        // Leaf first: the kernel frame, then the user frames, then the leading `worker`.
        let stack = &d.stack_table[p.samples[0].stack_index as usize];
        let names: Vec<&str> = stack
            .location_indices
            .iter()
            .map(|&l| {
                let line = &d.location_table[l as usize].lines[0];
                d.string_table[d.function_table[line.function_index as usize].name_strindex as usize].as_str()
            })
            .collect();
        assert_eq!(names, ["entry_SYSCALL_64", "read", "main", "worker"]);
        // The same stack in two processes is one stack in the dictionary.
        let other = &request.resource_profiles[1].scope_profiles[0].profiles[0];
        assert_eq!(other.samples[0].stack_index, p.samples[0].stack_index);
        // The executable's mapping carries its build id.
        let mapping =
            d.mapping_table.iter().find(|m| d.string_table[m.filename_strindex as usize] == "/usr/bin/worker");
        let attribute = &d.attribute_table[mapping.expect("the worker's mapping").attribute_indices[0] as usize];
        assert_eq!(d.string_table[attribute.key_strindex as usize], "process.executable.build_id.gnu");
    }
}
