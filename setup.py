from setuptools import find_packages, setup

setup(
    name='mmpartial',
    version='0.1.0',
    description='PartialNet backbones and DPConv layers for OpenMMLab',
    packages=find_packages(include=['mmpartial', 'mmpartial.*']),
    python_requires='>=3.9',
    # The heavy stack (torch, mmcv with ops, mmdet, mmpretrain) is installed
    # in a fixed order by tools/ensure_venv.sh; listing it here would let pip
    # resolve torch on its own.
    install_requires=['mmengine>=0.10.0'],
)
