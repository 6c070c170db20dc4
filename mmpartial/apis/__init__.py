"""What the tools do, one function each: load a config with its checks,
build a model from a config and a checkpoint, reparameterise, export,
benchmark, convert the reference weights, run the toy pipeline, print the
paper's tables."""
from .benchmark import BenchmarkError, BenchmarkOptions, run_benchmark
from .config import (configure_test, configure_training, load_config,
                     set_work_dir)
from .config_checks import ConfigError, check_partialnet_config
from .convert import ConversionError, convert_official_checkpoint
from .deploy import DeployError, reparameterize
from .export import export_onnx
from .inference import Classifier
from .model import (ModelBuildError, build_model, init_model,
                    load_model_checkpoint)
from .results import ResultsError, collect, format_tables
from .toy_pipeline import PipelineError, run_toy_pipeline

__all__ = [
    'BenchmarkError', 'BenchmarkOptions', 'Classifier', 'ConfigError',
    'ConversionError', 'DeployError', 'ModelBuildError', 'PipelineError',
    'ResultsError', 'build_model', 'check_partialnet_config', 'collect',
    'configure_test', 'configure_training', 'convert_official_checkpoint',
    'export_onnx', 'format_tables', 'init_model', 'load_config',
    'load_model_checkpoint', 'reparameterize', 'run_benchmark',
    'run_toy_pipeline', 'set_work_dir'
]
