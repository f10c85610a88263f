DROP TABLE partitions;
DROP TABLE nodes;
