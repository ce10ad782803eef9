"""What a request counts: prompt and output tokens (tokenizer, audio, images), usage read from
the answer or counted locally, the output cap a hold sets, and the log row's content."""
