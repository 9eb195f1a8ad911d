export type { Kafka, KafkaMessage, Message, Producer } from "kafkajs";
export {
  createKafka,
  createTopics,
  ensureTopics,
  groupLag,
  type KafkaOptions,
  partitionCount,
  TOPICS,
  type TopicName,
} from "./client.js";
export {
  type BatchConsumer,
  type BatchConsumerOptions,
  CONSUMER_SESSION_TIMEOUT_MS,
  type CommitMode,
  type ConsumedBatch,
  createBatchConsumer,
} from "./consumer.js";
export { KAFKA_SCRIPT, type LocalBroker, type LocalBrokerOptions, startLocalBroker } from "./local-broker.js";
export {
  createProducer,
  type DeadLetter,
  deadLetterMessage,
  partitionOfKey,
  type ReadDeadLetter,
  readDeadLetter,
} from "./producer.js";
