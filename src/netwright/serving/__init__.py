"""Serving a trained run: predictions from its ONNX export without torch (:mod:`.onnx`, used by
``netwright predict --onnx``) and the HTTP service (:func:`.app.serve`, ``nw.serve``,
``netwright serve``): :mod:`.model` (the run's model on onnxruntime or torch),
:mod:`.requests` (checking request bodies), :mod:`.batching` (dynamic batching).

Nothing here is imported by ``import netwright``; FastAPI and uvicorn only when a service is
built.
"""
