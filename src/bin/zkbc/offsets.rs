//! `zkbc offsets reset`, as kafka-consumer-groups resets: a plan printed
//! by default, written only with `--execute`; partitions chosen by topic
//! (`t` or `t:0,2`), `--partitions` or a CSV file; the plan exported as the
//! same CSV (`topic,partition,offset`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use zkbalance::cluster;
use zkbalance::inspect::{self, KafkaSide, ResetPlan, ResetTarget, TopicSelection};
use zkbalance::offsets::OffsetStorage;

use crate::common::{opt, table, warn, Format, ZkArgs};
use crate::errors::CliError;

#[derive(clap::Subcommand)]
pub enum OffsetsCommand {
    /// Move a group's committed offsets. Prints the plan and changes
    /// nothing unless --execute; refuses to execute while members are
    /// active unless --force.
    Reset(ResetArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by", "to_current", "from_file"]
)))]
pub struct ResetArgs {
    /// The group.
    group: String,
    /// Topics to reset, `TOPIC` or `TOPIC:P,P,...` (repeatable).
    #[arg(short = 't', long, value_name = "TOPIC[:PARTITIONS]", required_unless_present = "from_file")]
    topic: Vec<String>,
    /// Only these partitions (of the one --topic given).
    #[arg(long, value_delimiter = ',', value_name = "P,P,...")]
    partitions: Vec<i32>,
    /// To the oldest retained offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the retained range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<u64>,
    /// To the first message at or after this time: RFC 3339
    /// (2026-11-22T10:00:00Z, 2026-11-22T10:00:00.000) or @<ms since the epoch>.
    #[arg(long, value_name = "TIME", value_parser = time)]
    to_datetime: Option<i64>,
    /// Move the committed offset by N (negative: back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// To the committed offset as it is (with --export: a backup).
    #[arg(long)]
    to_current: bool,
    /// To the offsets in this CSV file (`topic,partition,offset` lines, as
    /// --export writes them).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "partitions"])]
    from_file: Option<PathBuf>,
    /// Write the change. Without it nothing changes: the plan is printed.
    #[arg(long)]
    execute: bool,
    /// Print the plan as CSV (`topic,partition,offset`), for --from-file.
    #[arg(long, conflicts_with = "format")]
    export: bool,
    #[command(flatten)]
    zk: ZkArgs,
    #[command(flatten)]
    kafka: crate::security::KafkaArgs,
    /// Where to read and write: zookeeper, kafka, or dual (both; the larger
    /// is the current offset).
    #[arg(long, default_value = "dual")]
    offset_storage: OffsetStorage,
    /// Execute even while members are registered (they may commit over it).
    #[arg(long)]
    force: bool,
    /// Output format of the plan.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

fn time(t: &str) -> Result<i64, String> {
    if let Some(ms) = t.strip_prefix('@') {
        return ms.parse().map_err(|_| format!("{t}: expected @<ms since the epoch>"));
    }
    let at = humantime::parse_rfc3339_weak(t).map_err(|_| format!("{t}: expected an RFC 3339 time or @<ms>"))?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{t}: before 1970"))?;
    Ok(ms.as_millis() as i64)
}

fn selection(args: &ResetArgs) -> Result<Vec<TopicSelection>, CliError> {
    let mut out = Vec::new();
    for t in &args.topic {
        let (topic, partitions) = match t.split_once(':') {
            Some((topic, ps)) => {
                let ps: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
                let ps = ps.map_err(|_| CliError::Usage(format!("--topic {t}: expected TOPIC:P,P,...")))?;
                (topic.to_owned(), Some(ps))
            }
            None => (t.clone(), None),
        };
        out.push(TopicSelection { topic, partitions });
    }
    if !args.partitions.is_empty() {
        match out.as_mut_slice() {
            [only] if only.partitions.is_none() => only.partitions = Some(args.partitions.clone()),
            _ => return Err(CliError::Usage("--partitions needs exactly one --topic without :PARTITIONS".into())),
        }
    }
    Ok(out)
}

fn from_file(path: &PathBuf) -> Result<ResetTarget, CliError> {
    let bad = |why: String| CliError::Usage(format!("--from-file {}: {why}", path.display()));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(path).map_err(|e| bad(e.to_string()))?;
    let mut offsets = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let field = |i: usize| record.get(i).map(str::trim).unwrap_or("");
        let (Ok(p), Ok(o)) = (field(1).parse::<i32>(), field(2).parse::<u64>()) else {
            return Err(bad(format!("line {}: expected topic,partition,offset", line + 1)));
        };
        offsets.insert((field(0).to_owned(), p), o);
    }
    if offsets.is_empty() {
        return Err(bad("no offsets in it".into()));
    }
    Ok(ResetTarget::Given(offsets))
}

fn target(args: &ResetArgs) -> Result<ResetTarget, CliError> {
    Ok(match args {
        ResetArgs { from_file: Some(path), .. } => from_file(path)?,
        ResetArgs { to_offset: Some(o), .. } => ResetTarget::Offset(*o),
        ResetArgs { to_datetime: Some(ms), .. } => ResetTarget::Timestamp(*ms),
        ResetArgs { shift_by: Some(n), .. } => ResetTarget::ShiftBy(*n),
        ResetArgs { to_earliest: true, .. } => ResetTarget::Earliest,
        ResetArgs { to_latest: true, .. } => ResetTarget::Latest,
        _ => ResetTarget::Current,
    })
}

fn print(plan: &ResetPlan, export: bool, format: Format) -> Result<(), CliError> {
    if export {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        for r in &plan.rows {
            w.write_record([r.topic.clone(), r.partition.to_string(), r.new.to_string()])
                .and_then(|()| w.flush().map_err(Into::into))
                .map_err(|e| CliError::Internal(format!("writing the CSV: {e}")))?;
        }
        return Ok(());
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(plan).expect("serializable")),
        Format::Table => {
            let rows: Vec<Vec<String>> = plan
                .rows
                .iter()
                .map(|r| {
                    vec![
                        plan.group.clone(),
                        r.topic.clone(),
                        r.partition.to_string(),
                        opt(&r.current),
                        r.new.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], &rows));
        }
    }
    Ok(())
}

pub async fn run(cmd: OffsetsCommand) -> Result<(), CliError> {
    let OffsetsCommand::Reset(args) = cmd;
    let (selection, target) = (selection(&args)?, target(&args)?);
    let client = args.zk.connect().await?;
    let view = cluster::read_brokers(&client).await?;
    let kafka = KafkaSide::new(&view, &args.group, args.zk.timeout(), &args.kafka.access())?;
    let plan = inspect::plan_reset(&client, &kafka, &args.group, &selection, &target, args.offset_storage).await?;
    if args.execute {
        inspect::apply_reset(&client, &kafka, &plan, args.offset_storage, args.force).await?;
    }
    print(&plan, args.export, args.format.unwrap_or(Format::Table))?;
    if !args.execute {
        if plan.active_members > 0 {
            warn(format!(
                "group {} has {} active member(s): --execute needs them stopped, or --force",
                plan.group, plan.active_members
            ));
        }
        eprintln!("zkbc: dry run: nothing changed; pass --execute to apply");
    }
    Ok(())
}
