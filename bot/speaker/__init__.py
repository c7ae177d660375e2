"""Speaker verification: WeSpeaker-format ONNX embeddings, enrolment, per-utterance verdicts.

``model`` finds and loads the embedding model (onnxruntime, no torch), ``frontend``
computes the features it expects, ``enrollment`` turns speech into a voiceprint behind
quality gates, ``tracker`` turns per-utterance scores into verdicts that use neighbouring
evidence, and ``verifier`` is what the pipeline calls during a call.
"""
