-- Console log queries that name a model and a channel (with or without a group) read one
-- index range instead of every row of the model or of the channel: at 10 M rows page 50, the
-- total and the stats of model + channel + group took 290-420 ms, all other filters < 60 ms.
-- Built on each partition; on a large table the build holds writes to the logs for the time
-- it takes (about a minute per 10 M rows here), so run the upgrade in a quiet hour.
CREATE INDEX IF NOT EXISTS logs_model_channel_time_idx
    ON logs (model_name, channel_id, created_at, id);
