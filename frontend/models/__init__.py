"""edgebert.frontend.models: the PyTorch side that produces the ONNX models the compiler reads.

`compressed_albert` (an ALBERT with an exit head per layer, built on `transformers`), its compression
(`pruning`, `af8_fake_quant`, `attention_span`), `compressed_training` and `compressed_export` (ONNX with EdgeBERT
metadata); the adapter-ALBERT multi-task models (`adapters`, `multitask_albert`, `multitask_training`,
`multitask_export`); the synthetic tasks they train on (`synthetic_tasks`) and the training scripts' shared flags
(`training_flags`); plain Hugging Face ALBERT exports (`hf_albert_export`). These modules need torch; the
compiler, isa and emulator never import them (the compiler reads their ONNX files).
"""
