"""The sections of a DLIO workload, each translated to the dnnbench schema's keys (see
:mod:`dnnbench.config.dlio` for what the translation means): workflow, framework, model,
storage + dataset (and the ``prepare.*`` keys that make ``prepare`` write what DLIO's generator
writes), reader, train, checkpoint, evaluation, metric, output and profiling."""

from __future__ import annotations

import math
import os
from typing import Any

from dnnbench.config.dlio_translation import DlioTranslation, Section

#: formats dnnbench reads, DLIO's name = dnnbench's dataset.format
FORMATS = ("npz", "npy", "hdf5", "tfrecord", "jpeg", "png")
#: DLIO formats with no dnnbench reader
_NO_READER = {"csv": "CSV reader", "indexed_binary": "indexed_binary reader",
              "mmap_indexed_binary": "indexed_binary reader", "synthetic": "synthetic (no I/O) mode",
              "hdf5_opt": "hdf5_opt reader (DLIO 2.0 has none either)"}
_LOADERS = ("pytorch", "tensorflow")
#: DLIO's metric.au default
DEFAULT_AU = 0.90
MiB = 2**20


def workflow(t: DlioTranslation, sec: Section, present: bool) -> dict[str, bool]:
    """Which steps run. DLIO: with a workflow section and no ``train: true`` it only generates."""
    flags = {k: bool(sec.get(k, False)) for k in ("generate_data", "train", "evaluation", "checkpoint")}
    if not present:
        flags["train"] = True
    t.set("prepare.auto", flags["generate_data"], f"workflow.generate_data={flags['generate_data']}")
    t.set("execution.phases.train", flags["train"], f"workflow.train={flags['train']}")
    sec.note("profiling", "dnnbench samples CPU and memory in system.csv on every run")
    sec.note("debug", "DLIO's debug log level and wait for Enter")
    sec.finish()
    return flags


def framework(t: DlioTranslation, value: Any) -> str:
    if value not in _LOADERS:
        raise t.refuse("framework", f"{value!r} is not pytorch or tensorflow")
    t.set("framework.name", value, f"framework={value}")
    return value


def model(t: DlioTranslation, value: Any) -> dict[str, Any]:
    """The run's name; the later generation's model sizes (read by the checkpoint section)."""
    if isinstance(value, str) or value is None:
        t.set("name", value or "default", f"model={value}")
        return {}
    sec = Section(t, "model", value)
    name = sec.get("name", "default")
    t.set("name", name, f"model.name={name}")
    sizes = {k: sec.get(k) for k in ("model_size_bytes", "model_size", "num_layers", "layer_parameters",
                                     "optimization_groups") if sec.has(k)}
    for key in ("type", "model_datatype", "optimizer_datatype", "parallelism", "transformer"):
        sec.note(key, "describes the model of the checkpointing workloads; only its checkpoint bytes matter")
    sec.finish()
    return sizes


def storage_and_dataset(t: DlioTranslation, data: dict[str, Any], workflow: dict[str, bool]) -> None:
    storage = Section(t, "storage", data.get("storage"))
    dataset = Section(t, "dataset", data.get("dataset"))
    folder = str(dataset.get("data_folder", "./data/")).rstrip("/") or "/"
    root = str(storage.get("storage_root", "./"))
    kind = storage.get("storage_type", "local_fs")
    if kind == "local_fs":
        t.set("storage.client", "fs", "storage.storage_type=local_fs")
        t.set("storage.root", os.path.join(root, folder), f"storage.storage_root={root!r} + "
                                                          f"dataset.data_folder={folder!r}")
    elif kind == "s3":
        _s3(t, storage, root, folder)
    else:
        raise t.refuse("storage.storage_type", f"{kind!r}: dnnbench reads local_fs (a mounted parallel file "
                                               "system included) and s3", "use local_fs for a mounted file system")
    storage.finish()
    _dataset(t, dataset, workflow)


def _s3(t: DlioTranslation, storage: Section, root: str, folder: str) -> None:
    """DLIO's s3 storage: the bucket is storage_root, the prefix data_folder (s3://bucket/ stripped)."""
    bucket = root.strip("/")
    prefix = folder.removeprefix("s3://").removeprefix(bucket).strip("/")
    t.set("storage.client", "boto3", "storage.storage_type=s3")
    t.set("storage.s3.bucket", bucket, f"storage.storage_root={root!r}")
    t.set("storage.prefixes", [prefix], f"dataset.data_folder={folder!r}")
    opts = Section(t, "storage.storage_options", storage.get("storage_options"))
    for dlio, ours in (("endpoint_url", "endpoint_url"), ("region", "region"),
                       ("access_key_id", "access_key"), ("secret_access_key", "secret_key"),
                       ("s3_max_attempts", "max_attempts")):
        if opts.has(dlio):
            t.set(f"storage.s3.{ours}", opts.get(dlio), f"storage.storage_options.{dlio}")
    if opts.has("s3_force_path_style"):
        style = "path" if opts.get("s3_force_path_style") else "auto"
        t.set("storage.s3.addressing_style", style, "storage.storage_options.s3_force_path_style")
    opts.finish()


def _dataset(t: DlioTranslation, sec: Section, workflow: dict[str, bool]) -> None:
    """Format, layout, file counts and sample sizes: what is read, and what ``prepare`` writes."""
    fmt = sec.get("format", "tfrecord")
    if fmt in _NO_READER:
        raise t.refuse("dataset.format", f"{fmt!r}: dnnbench has no {_NO_READER[fmt]}",
                       f"dnnbench reads {', '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise t.refuse("dataset.format", f"{fmt!r} is not a DLIO format", f"one of {', '.join(FORMATS)}")
    files = sec.num("num_files_train", 8)
    per_file = sec.num("num_samples_per_file", 1)
    t.set("dataset.format", fmt, f"dataset.format={fmt}")
    t.set("dataset.layout", "dlio", "dataset.data_folder (train/ and valid/)")
    if fmt in ("npz", "npy"):
        t.set("dataset.format_options", {"sample_axis": "last"}, f"DLIO's {fmt} files: samples on the last axis")
    t.set("dataset.decode", "gray", "DLIO decodes every sample it reads (np.load, h5py, PIL mode L)")
    t.set("dataset.max_samples", files * per_file,
          f"dataset.num_files_train={files} x num_samples_per_file={per_file} (DLIO reads the first files)")
    _prepare(t, sec, fmt, files, per_file, workflow)
    sec.refuse_if("record_element_type", sec.data.get("record_element_type") not in (None, "uint8"),
                  "dnnbench generates uint8 samples as DLIO 2.0 does")
    for key in ("record_element_bytes", "record_dims"):
        sec.refuse_if(key, True, "DLIO 2.0 has no such sample shape; dnnbench generates DLIO 2.0's 2-D samples")
    sec.refuse_if("enable_chunking", bool(sec.data.get("enable_chunking")),
                  "HDF5 chunking (DLIO 2.0.0 itself crashes on it) is not generated by dnnbench")
    sec.refuse_if("compression", fmt == "hdf5" and sec.data.get("compression") not in (None, "none"),
                  "compressed HDF5 is not generated by dnnbench")
    sec.note("compression", "DLIO 2.0 never compresses npz/npy/tfrecord (its string-vs-enum quirk)")
    for key in ("compression_level", "chunk_size"):
        sec.note(key, "HDF5 compression/chunking is off (DLIO 2.0 never passes it to h5py)")
    sec.note("record_length_resize", "the decoded size handed to the accelerator; affects no I/O")
    sec.note("record_length_bytes_resize", "the decoded size handed to the accelerator; affects no I/O")
    sec.note("num_files_eval", "evaluation is not run, so valid/ is neither generated nor read")
    sec.note("num_subfolders_eval", "evaluation is not run")
    sec.note("keep_files", "dnnbench never deletes the dataset")
    sec.note("generation_buffer_size", "the generator's memory; the files are the same")
    sec.finish()


def _prepare(t: DlioTranslation, sec: Section, fmt: str, files: int, per_file: int,
             workflow: dict[str, bool]) -> None:
    """``prepare.*``: the files DLIO's generator writes (names, layout, counts, sizes)."""
    key, _ = sec.first("record_length", "record_length_bytes", default=65536)
    skey, _ = sec.first("record_length_stdev", "record_length_bytes_stdev", default=0)
    length, stdev = sec.num(key, 65536, float), sec.num(skey, 0, float)
    subfolders = sec.num("num_subfolders_train", 0)
    sec.refuse_if("num_subfolders_train", subfolders == 1,
                  "1 subfolder is broken in DLIO 2.0 (written flat, then refused by its reader)", "use 0 or >= 2")
    prefix = sec.get("file_prefix", "img")
    if not _prepare_writes(fmt):
        if workflow["generate_data"]:
            raise t.refuse("workflow.generate_data", f"dnnbench's prepare does not write {fmt} files yet",
                           "generate the data with DLIO, then ++workload.workflow.generate_data=False")
        t.skip("dataset (generation)", f"dnnbench's prepare does not write {fmt} yet: generate with DLIO")
        return
    t.set("prepare.format", fmt, f"dataset.format={fmt}")
    t.set("prepare.layout", "dlio", "DLIO's layout: train/<prefix>_<i>_of_<n>.<format> and valid/")
    t.set("prepare.num_files", files, f"dataset.num_files_train={files}")
    t.set("prepare.samples_per_file", per_file, f"dataset.num_samples_per_file={per_file}")
    t.set("prepare.record_length_bytes", max(1, int(length)), f"dataset.{key}={length}")
    t.set("prepare.record_length_bytes_stdev", int(stdev), f"dataset.{skey}={stdev}")
    t.set("prepare.num_subfolders", subfolders, f"dataset.num_subfolders_train={subfolders}")
    if prefix != "img":
        t.skip("dataset.file_prefix", "prepare names files img_<i>_of_<n> (reading takes any name)")


def _prepare_writes(fmt: str) -> bool:
    """Whether ``prepare.format`` accepts the format (the schema's validator says)."""
    from pydantic import ValidationError

    from dnnbench.config.schema import PrepareConfig

    try:
        PrepareConfig.model_validate({"format": fmt})
    except ValidationError:
        return False
    return True


def reader_data(t: DlioTranslation, data: dict[str, Any]) -> Any:
    """``data_reader`` wins over ``reader`` when both are there (DLIO 2.0)."""
    if "data_reader" in data:
        if "reader" in data:
            t.skip("reader", "data_reader is given and wins, as in DLIO")
        return data["data_reader"]
    return data.get("reader")


def reader(t: DlioTranslation, sec: Section, framework: str, data: dict[str, Any]) -> None:
    """Loader, batch, read threads, prefetch and the shuffles (DLIO's default: off)."""
    loader = sec.get("data_loader", framework)
    if loader not in _LOADERS:
        raise t.refuse("reader.data_loader", f"{loader!r}: dnnbench loads with pytorch or tensorflow",
                       "use the pytorch or tensorflow loader")
    if loader != framework:
        raise t.refuse("reader.data_loader", f"{loader!r} with framework {framework!r}: DLIO refuses the "
                                             "mix too", f"data_loader: {framework}")
    if loader == "pytorch" and (data.get("dataset") or {}).get("format") == "tfrecord":
        raise t.refuse("reader.data_loader", "pytorch does not read tfrecord in DLIO", "use tensorflow")
    batch, threads = sec.num("batch_size", 1), sec.num("read_threads", 1)
    t.set("framework.batch_size", batch, f"reader.batch_size={batch}")
    t.set("framework.num_workers", threads, f"reader.read_threads={threads}")
    _prefetch(t, sec, loader, threads)
    _shuffles(t, sec, loader)
    if sec.has("multiprocessing_context"):
        ctx = sec.get("multiprocessing_context")
        t.set("framework.multiprocessing_context", ctx, f"reader.multiprocessing_context={ctx}")
    _reader_refusals(sec)
    _reader_notes(sec)
    sec.finish()


def _prefetch(t: DlioTranslation, sec: Section, loader: str, threads: int) -> None:
    """torch: prefetch_factor = ceil(prefetch_size / read_threads) (0: 2); tf: prefetch batches."""
    size = sec.num("prefetch_size", 2)
    if loader == "pytorch" and threads > 0:
        factor = math.ceil(size / threads) if size > 0 else 2
        t.set("framework.prefetch_factor", factor, f"reader.prefetch_size={size} / read_threads={threads}")
        t.set("framework.persistent_workers", True, "DLIO's DataLoader keeps its workers across epochs")
    elif loader == "tensorflow":
        t.set("framework.tensorflow.prefetch", size, f"reader.prefetch_size={size}")


def _shuffles(t: DlioTranslation, sec: Section, loader: str) -> None:
    for key in ("file_shuffle", "sample_shuffle"):
        value = str(sec.get(key, "off")).lower()
        if value not in ("off", "seed", "random"):
            raise t.refuse(f"reader.{key}", f"{value!r} is not off, seed or random")
        t.set(f"dataset.{key}", value, f"reader.{key}={value}")
    size = sec.get("shuffle_size", 1024)
    if loader == "tensorflow" and sec.data.get("sample_shuffle", "off") != "off":
        t.set("framework.tensorflow.shuffle_buffer", int(size), f"reader.shuffle_size={size}")
    else:
        sec.note("shuffle_size", "tf.data's sample shuffle buffer; not used without it")


def _reader_refusals(sec: Section) -> None:
    sec.refuse_if("preprocess_time", sec.num("preprocess_time", 0, float) > 0,
                  "a per-sample sleep in the reader is not emulated")
    sec.refuse_if("computation_time", True, "belongs in train.computation_time")
    sec.refuse_if("odirect", bool(sec.data.get("odirect")), "O_DIRECT reads are not supported")
    for key in ("data_loader_classname", "reader_classname"):
        sec.refuse_if(key, True, "DLIO plug-in classes do not run in dnnbench", "see README 'Plugins'")
    sec.refuse_if("data_loader_sampler", sec.data.get("data_loader_sampler") not in (None, "index", "iterative"),
                  "unknown sampler")


def _reader_notes(sec: Section) -> None:
    reasons = {
        "batch_size_eval": "evaluation is not run",
        "computation_threads": "tfrecord parsing runs in the reading workers (framework.num_workers)",
        "transfer_size": "TFRecordDataset's buffer; dnnbench reads each record's bytes as they are",
        "read_type": "DLIO's open/close per sample; dnnbench reads each sample's byte range",
        "dont_use_mmap": "DALI only", "file_access": "DLIO 2.0 parses it and uses it nowhere",
        "data_loader_sampler": "the sample order follows file_shuffle / sample_shuffle",
        "preprocess_time_stdev": "no preprocess sleep", "pin_memory": "framework.pin_memory: auto",
        "transformed_record_dims": "the decoded size; affects no I/O",
        "transformed_record_element_type": "the decoded type; affects no I/O",
        "preprocess_time": "0: no sleep", "odirect": "False: buffered reads",
    }
    for key, why in reasons.items():
        sec.note(key, why)


def train(t: DlioTranslation, sec: Section) -> int:
    """Epochs, steps, the emulated accelerator's step time, the seed; returns the epochs."""
    epochs = sec.num("epochs", 1)
    t.set("training.epochs", epochs, f"train.epochs={epochs}")
    compute = sec.get("computation_time", 0.0)
    if not isinstance(compute, dict):
        compute = sec.num("computation_time", 0.0, float)
    else:
        sub = Section(t, "train.computation_time", compute)
        sub.refuse_if("stdev", sub.num("stdev", 0, float) > 0, "a random step time is not emulated")
        compute = sub.num("mean", 0.0, float)
        sub.finish()
    sec.refuse_if("computation_time_stdev", sec.num("computation_time_stdev", 0, float) > 0,
                  "a random step time is not emulated: dnnbench sleeps computation_time every step")
    t.set("training.trainer", "emulate", "train.computation_time (an emulated accelerator)")
    t.set("training.compute_time_s", float(compute), f"train.computation_time={compute}")
    t.set("training.warmup_steps", 1, "DLIO leaves the first step out of AU")
    steps = sec.num("total_training_steps", -1)
    if steps > 0:
        t.set("training.max_steps", steps, f"train.total_training_steps={steps}")
    seed = sec.num("seed", 123)
    t.set("execution.seed", int(seed), f"train.seed={seed}")
    sec.note("seed_change_epoch", "shuffle: random draws a new seeded order each epoch")
    sec.note("computation_time_stdev", "0: a fixed step time")
    sec.finish()
    return epochs


def _checkpoint_epochs(sec: Section, epochs: int) -> list[int]:
    after = sec.num("checkpoint_after_epoch", 1)
    every = max(1, sec.num("epochs_between_checkpoints", 1))
    return [e for e in range(1, epochs + 1) if e >= after and (e - after) % every == 0]


def checkpoint(t: DlioTranslation, sec: Section, workflow: dict[str, bool], epochs: int,
                model: dict[str, Any]) -> None:
    """DLIO checkpoints at chosen epoch ends; dnnbench's phase writes one after the last epoch.
    Honoured when that is what DLIO does (unet3d: epoch 5 of 5), refused otherwise."""
    for key in ("num_checkpoints_write", "num_checkpoints_read", "time_between_checkpoints"):
        sec.refuse_if(key, workflow["checkpoint"] and not workflow["train"],
                      "the checkpointing workloads (llama3) are not run by dnnbench")
    sec.refuse_if("steps_between_checkpoints", sec.num("steps_between_checkpoints", -1) >= 0,
                  "checkpoints inside an epoch are not run: dnnbench checkpoints after the last epoch")
    at = _checkpoint_epochs(sec, epochs) if workflow["checkpoint"] else []
    if at and at != [epochs]:
        raise t.refuse("checkpoint.epochs_between_checkpoints", f"DLIO checkpoints after epochs {at}; dnnbench "
                                                                 "checkpoints once, after the last epoch",
                       f"++workload.checkpoint.checkpoint_after_epoch={epochs} (or workflow.checkpoint=False)")
    t.set("execution.phases.checkpoint", bool(at), f"workflow.checkpoint={workflow['checkpoint']} (after epochs {at})")
    if at:
        folder = str(sec.get("checkpoint_folder", "checkpoints")).strip("/")
        t.set("checkpoint.prefix", folder, f"checkpoint.checkpoint_folder={folder!r} (under the storage root)")
        nbytes = _checkpoint_bytes(sec, model)
        t.set("checkpoint.size_MiB", round(nbytes / MiB, 3), f"checkpoint sizes: {nbytes} bytes")
    for key in ("checkpoint_folder", "checkpoint_after_epoch", "epochs_between_checkpoints", "model_size",
                "optimization_groups", "num_layers", "layer_parameters", "type", "tensor_parallelism",
                "pipeline_parallelism", "checkpoint_mechanism_classname", "fsync", "rank_sync", "mode",
                "randomize_tensor", "recovery_rank_shift"):
        sec.note(key, "no checkpoint is written" if not at else "the phase writes one checkpoint of that size")
    sec.finish()


def _checkpoint_bytes(sec: Section, model: dict[str, Any]) -> int:
    """DLIO 2.0's rank-0 checkpoint: the model tensor (int8) + one file per layer of
    ``layer_parameters`` (default [17371, 24740228]) + the optimizer groups."""
    size = sec.get("model_size", model.get("model_size_bytes", model.get("model_size", 10240)))
    layers = sec.get("layer_parameters", model.get("layer_parameters", [17371, 24740228]))
    num_layers = int(sec.get("num_layers", model.get("num_layers", 1)))
    groups = sec.get("optimization_groups", model.get("optimization_groups", []))
    return int(size) + num_layers * sum(int(x) for x in layers) + 3 * sum(int(g) for g in groups)


def evaluation(t: DlioTranslation, sec: Section, workflow: dict[str, bool]) -> None:
    if workflow["evaluation"]:
        raise t.refuse("workflow.evaluation", "DLIO's evaluation pass over valid/ is not emulated",
                       "++workload.workflow.evaluation=False")
    for key in list(sec.data):
        sec.note(key, "workflow.evaluation is off")
    sec.finish()


def metric(t: DlioTranslation, sec: Section) -> None:
    au = sec.num("au", DEFAULT_AU, float)
    origin = f"metric.au={au}" if sec.has("au") else f"metric.au not given: DLIO's default {DEFAULT_AU}"
    t.set("training.au_target_percent", round(float(au) * 100, 6), origin)
    sec.finish()


def output_and_profiling(t: DlioTranslation, data: dict[str, Any]) -> None:
    out = Section(t, "output", data.get("output"))
    if out.has("folder"):
        folder = out.get("folder")
        t.set("metrics.output_dir", folder, f"output.folder={folder!r}")
    out.note("log_file", "dnnbench's run log is logging.path")
    out.note("metric", "dnnbench leaves out training.warmup_steps (1) from AU")
    out.finish()
    prof = Section(t, "profiling", data.get("profiling"))
    for key in list(prof.data):
        prof.note(key, "dnnbench samples CPU and memory in system.csv; no iostat/darshan")
    prof.finish()
