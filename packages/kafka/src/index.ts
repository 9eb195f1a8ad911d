export type { Kafka, KafkaMessage, Message, Producer } from "kafkajs";
export {
  createKafka,
  createTopics,
  ensureTopics,
  groupLag,
  type KafkaOptions,
  TOPICS,
  type TopicName,
} from "./client.js";
export {
  type BatchConsumer,
  type BatchConsumerOptions,
  type CommitMode,
  type ConsumedBatch,
  createBatchConsumer,
} from "./consumer.js";
export {
  KAFKA_SCRIPT,
  type LocalBroker,
  type LocalBrokerOptions,
  runKafkaScript,
  startLocalBroker,
} from "./local-broker.js";
export { createProducer, type DeadLetter, deadLetterMessage, type ReadDeadLetter, readDeadLetter } from "./producer.js";
