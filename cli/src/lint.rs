//! `flink-ha lint`: gather the inputs (files, directories, stdin), lint them as one
//! bundle, print them in the chosen format.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use flink_ha_policy::{InputFormat, LintInput, LintRun, MAX_INPUT_BYTES, Severity, lint_inputs};

use crate::settings::Settings;

#[derive(Args)]
pub struct LintArgs {
    /// Files or directories to lint (directories: *.yaml and *.yml, recursively), or `-`
    /// for standard input. All inputs of one run form a bundle for the cross-document
    /// rules (HA4xx).
    #[arg(value_name = "PATH", required_unless_present = "examples")]
    paths: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,

    /// How to read the inputs; `auto` decides by file name and content.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = parse_input_format)]
    input_format: InputFormat,

    /// Lint the built-in examples (a clean HA setup and the common mistakes) instead of PATHs.
    #[arg(long, conflicts_with = "paths")]
    examples: bool,

    /// The least severity that fails the run (exit 1; a JUnit failure): `error` (the
    /// default), `warning` (warnings fail too), or `never` (report only, exit 0).
    #[arg(long, value_enum, value_name = "SEVERITY", default_value_t = FailOn::Error)]
    fail_on: FailOn,

    /// Rule settings (severities, rules off, per path glob) from this file instead of the
    /// nearest `.flink-ha.yaml` from the working directory upward.
    #[arg(long, value_name = "FILE", conflicts_with = "no_settings")]
    settings: Option<std::path::PathBuf>,

    /// Ignore any `.flink-ha.yaml`.
    #[arg(long)]
    no_settings: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    Sarif,
    /// JUnit XML: a test suite per input, a test case per finding.
    Junit,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Never,
}

impl FailOn {
    /// The least severity that fails, if any does.
    fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Error => Some(Severity::Error),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Never => None,
        }
    }
}

fn parse_input_format(s: &str) -> Result<InputFormat, String> {
    InputFormat::parse(s).ok_or_else(|| format!("expected one of {}", InputFormat::NAMES.join(", ")))
}

/// One input read into memory under the name it is reported as.
struct Loaded {
    name: String,
    bytes: Vec<u8>,
}

pub fn run(args: &LintArgs) -> Result<ExitCode> {
    let inputs = if args.examples {
        crate::examples::ALL
            .iter()
            .map(|(name, text)| Loaded {
                name: format!("samples/{name}"),
                bytes: text.as_bytes().to_vec(),
            })
            .collect()
    } else {
        gather(&args.paths)?
    };
    let refs: Vec<LintInput<'_>> = inputs
        .iter()
        .map(|i| LintInput {
            name: &i.name,
            bytes: &i.bytes,
        })
        .collect();
    let mut reports = lint_inputs(&refs, args.input_format);
    let settings = match (&args.settings, args.no_settings) {
        (Some(path), _) => Some(Settings::load(path)?),
        (None, true) => None,
        (None, false) => Settings::discover(Path::new("."))?,
    };
    if let Some(settings) = &settings {
        eprintln!("flink-ha: rule settings from {}", settings.source.display());
        for (input, report) in inputs.iter().zip(&mut reports) {
            settings.apply(&input.name, report);
        }
    }
    let run = LintRun::new(inputs.iter().map(|i| i.name.clone()).zip(reports));
    let out = match args.format {
        OutputFormat::Text => run.to_text(),
        OutputFormat::Json => run.to_json() + "\n",
        OutputFormat::Sarif => run.to_sarif() + "\n",
        OutputFormat::Junit => run.to_junit(args.fail_on.threshold()),
    };
    let mut stdout = io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write to standard output")?,
    }
    let failing = match args.fail_on.threshold() {
        None => 0,
        Some(Severity::Error) => run.summary.errors,
        Some(Severity::Warning) => run.summary.errors + run.summary.warnings,
        Some(Severity::Info) => run.summary.errors + run.summary.warnings + run.summary.infos,
    };
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn gather(paths: &[String]) -> Result<Vec<Loaded>> {
    let mut inputs = Vec::new();
    for arg in paths {
        if arg == "-" {
            inputs.push(Loaded {
                name: "<stdin>".to_string(),
                bytes: read_limited(io::stdin().lock()).context("cannot read standard input")?,
            });
            continue;
        }
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {arg}"))?;
        if meta.is_dir() {
            let before = inputs.len();
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.with_context(|| format!("cannot walk {arg}"))?;
                if entry.file_type().is_file() && is_config_file(entry.path()) {
                    inputs.push(load(entry.path())?);
                }
            }
            if inputs.len() == before {
                bail!("no *.yaml or *.yml files under {arg}");
            }
        } else {
            inputs.push(load(path)?);
        }
    }
    Ok(inputs)
}

fn is_config_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn load(path: &Path) -> Result<Loaded> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Loaded {
        name: path.display().to_string(),
        bytes: read_limited(file).with_context(|| format!("cannot read {}", path.display()))?,
    })
}

/// Reads at most one byte more than the linter accepts: enough for it to report the
/// size (HA001) without holding a huge file in memory.
fn read_limited(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}
