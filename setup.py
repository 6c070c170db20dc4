import os.path as osp

from setuptools import find_packages, setup


def read_version():
    # The one place the version is written: mmpartial/version.py.
    namespace = {}
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'mmpartial',
                    'version.py')
    with open(path) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmpartial',
    version=read_version(),
    description='PartialNet backbones and DPConv layers for OpenMMLab',
    packages=find_packages(include=['mmpartial', 'mmpartial.*']),
    python_requires='>=3.9',
    # The heavy stack (torch, mmcv with ops, mmdet, mmpretrain) is installed
    # in a fixed order by tools/ensure_venv.sh; listing it here would let pip
    # resolve torch on its own.
    install_requires=['mmengine>=0.10.0'],
)
