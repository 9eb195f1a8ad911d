export type { Kafka, KafkaMessage, Message, Producer } from "kafkajs";
export {
  CONSUMER_METADATA_MAX_AGE_MS,
  createKafka,
  createTopics,
  ensureTopics,
  FOLLOWER_MAX_WAIT_MS,
  groupLag,
  type KafkaOptions,
  partitionCount,
  TOPIC_SETTINGS,
  TOPICS,
  type TopicName,
  type TopicOptions,
  topicOptions,
} from "./client.js";
export {
  type BatchConsumer,
  type BatchConsumerOptions,
  CONSUMER_SESSION_TIMEOUT_MS,
  type CommitMode,
  type ConsumedBatch,
  createBatchConsumer,
  OwnershipLost,
} from "./consumer.js";
export {
  createTopicFollower,
  replaceConsumerWhenGivenUp,
  type TopicFollower,
  type TopicFollowerOptions,
} from "./follow.js";
export { CONSUMER_LAG_METRIC, consumerLagGauge } from "./lag-metric.js";
export {
  KAFKA_SCRIPT,
  type LocalBroker,
  type LocalBrokerOptions,
  runKafkaScript,
  startLocalBroker,
} from "./local-broker.js";
export { partitionOf } from "./partition.js";
export {
  createProducer,
  type DeadLetter,
  deadLetterMessage,
  type ReadDeadLetter,
  readDeadLetter,
} from "./producer.js";
