import os.path as osp

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def read_version():
    # The one place the version is written: mmpartial/version.py.
    namespace = {}
    with open(osp.join(ROOT, 'mmpartial', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_readme():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def read_requirements(name):
    """The requirement lines of ``requirements/<name>.txt``, comments and
    blank lines left out."""
    with open(osp.join(ROOT, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


# Every range admits what an existing OpenMMLab environment already has,
# so `pip install -e .` (or `mim install -e .`) there installs only what is
# missing and moves none of torch, mmcv, mmdet or mmpretrain. The pinned
# stack of a fresh machine is tools/ensure_venv.sh's.
EXTRAS = ('det', 'cls', 'seg', 'export', 'openvino', 'analysis', 'tests')
extras_require = {name: read_requirements(name) for name in EXTRAS}
extras_require['mim'] = read_requirements('mminstall')
extras_require['all'] = sorted(
    {req for name in EXTRAS for req in extras_require[name]})

setup(
    name='mmpartial',
    version=read_version(),
    description='PartialNet backbones and DPConv layers for OpenMMLab',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    keywords='computer vision, backbone, object detection, OpenMMLab',
    packages=find_packages(include=['mmpartial', 'mmpartial.*']),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime'),
    extras_require=extras_require,
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
