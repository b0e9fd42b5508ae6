"""Data formats: how samples are stored in files, located, decoded and generated.

One module per format (:mod:`.npz`, :mod:`.npy`, :mod:`.hdf5`, :mod:`.jpeg`, :mod:`.png`,
:mod:`.raw`, :mod:`.tar`...), each a class satisfying :class:`dnnbench.formats.base.Format`,
registered in ``dnnbench.registry.FORMATS`` (built-ins: the table in :mod:`.spec`; plugins:
``@FORMATS.register(name, extensions=..., options=...)``). This package's ``__init__`` stays
light: :mod:`.spec` is read by ``validate``.
"""
