import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

// Shared by the three AWS provider types; validated now, active with "Backends I".
const awsBase = (t: SchemaTools) => ({
  region: z.string().min(1).optional(),
  endpoint: z.string().url().optional(),
  role_arn: z.string().startsWith("arn:", "must be an IAM role ARN").optional(),
  profile: z.string().optional(),
  credentials_file: t.path().optional(),
});

export const awsSecretsManagerSchema = (t: SchemaTools) =>
  z.object({ type: z.literal("aws-secrets-manager"), ...awsBase(t) }).strict();

export const awsSsmSchema = (t: SchemaTools) =>
  z.object({ type: z.literal("aws-ssm"), ...awsBase(t), with_decryption: z.boolean().default(true) }).strict();

export const awsStsSchema = (t: SchemaTools) =>
  z.object({ type: z.literal("aws-sts"), ...awsBase(t), duration: t.duration().optional() }).strict();
