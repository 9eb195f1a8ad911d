export { createUsageProducer, type PublishResult, type UsageProducer, type UsageProducerOptions } from "./producer.js";
