-- Keys stored within one second of each other (a first start followed at once by a
-- rotation) must still sort newest first: `seq` breaks ties in creation order.
ALTER TABLE signing_keys ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
